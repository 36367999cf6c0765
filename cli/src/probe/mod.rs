//! What `status`, `verify` and `destroy` read from the host: the Docker
//! API over the instance's socket, systemd, iptables-save, /sys/class/net,
//! and the instances known from confs and from running bridges.

pub mod cgroup;
pub mod host;
pub mod http;
