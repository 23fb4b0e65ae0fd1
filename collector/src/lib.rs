//! The ward collector as a library: ingest of agent observations, the inventory store, contract
//! and asset import, linking and compliance flags. The binary (`main.rs`) wires them up.
#![forbid(unsafe_code)]

pub mod assets;
pub mod broker;
pub mod contracts;
pub mod model;
pub mod source;
