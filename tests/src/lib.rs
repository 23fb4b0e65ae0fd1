//! Shared helpers for ward end-to-end tests: reading fixture captures through the protocols crate.
