//! Dockyard's conf model, shared by the generator, the helpers and the CLI so
//! that they can never disagree about what a conf means.
//!
//! Data flows one way: a conf file is read ([`source`]), split into
//! located key/value pairs ([`ini`]), turned into a validated [`Instance`]
//! ([`instance`]), checked against its siblings ([`conflict`]), and only then
//! rendered into units by the generator.

pub mod conflict;
pub mod contract;
pub mod diag;
pub mod engine;
pub mod firewall;
pub mod hostconf;
pub mod ini;
pub mod installed;
pub mod instance;
pub mod keys;
pub mod load;
pub mod manifest;
pub mod mountinfo;
pub mod name;
pub mod network;
pub mod parallel;
pub mod paths;
pub mod resources;
pub mod root;
pub mod rootless;
pub mod source;
pub mod state;
pub mod subid;
pub mod suggest;
mod value;

pub use diag::{Diagnostic, Severity};
pub use instance::{DaemonOption, Instance, Runtime};
pub use load::{load_dir, Catalog, Skipped};
pub use name::InstanceName;
