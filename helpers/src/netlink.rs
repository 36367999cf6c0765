//! The synchronous rtnetlink client lives in the `dockyard-netlink` crate,
//! shared with `dockyard new` (which reads routes and addresses with it).

pub use dockyard_netlink::*;
