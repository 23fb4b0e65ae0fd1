//! The ward agent as a library: capture-file reading and the offline pipeline the binary wires
//! up. Live capture and MQTT streaming arrive with issue 3.
#![forbid(unsafe_code)]

pub mod capture;
pub mod config;
pub mod devices;
pub mod engine;
pub mod observation {
    //! The observation schema; defined in [`ward_protocols::schema::observation`] so the
    //! collector shares it.
    pub use ward_protocols::schema::observation::*;
}
pub mod oui;
pub mod output;
pub mod pcap;
pub mod pipeline;
pub mod privileges;
pub mod rules;
pub mod run;
