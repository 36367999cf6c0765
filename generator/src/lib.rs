//! dockyard-generator as a library, so `dockyard check --dry-run` renders
//! exactly what the generator would write.

pub mod escape;
pub mod log;
pub mod output;
pub mod run;
pub mod unit;
