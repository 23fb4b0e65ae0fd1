//! Who reads the inventory and how: the HTTP API ([`api`]), what each caller may see
//! ([`views`]), API tokens ([`tokens`]) and the command-line reports ([`report`]).

pub mod api;
pub mod report;
pub mod tokens;
pub mod views;
