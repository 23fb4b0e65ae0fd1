//! The ward collector as a library: ingest of agent observations, the inventory store, contract
//! and asset import, linking and compliance flags. The binary (`main.rs`) wires them up.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod api;
pub mod assets;
pub mod broker;
pub mod config;
pub mod contracts;
pub mod demo;
pub mod flags;
pub mod fuzz_harness;
pub mod ingest;
pub mod link;
pub mod model;
pub mod pattern;
pub mod report;
pub mod serve;
pub mod source;
pub mod store;
pub mod summary;
pub mod tokens;
pub mod views;
