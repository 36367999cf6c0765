//! What differs between the Docker engines an instance can pin, decided
//! from the pinned version and the runtime alone, so the generator renders
//! it and the helpers only carry it out.
//!
//! Today that is the image store. Docker 29 made the containerd image store
//! the default on a fresh data root (moby v29 `daemon/image_store_choice.go`,
//! `determineImageStoreChoice`); a data root with graph-driver data keeps its
//! graph driver there (`graphdriver.HasPriorDriver`), but only while nothing
//! chooses explicitly, and `vfs` data does not count. Dockyard chooses per
//! instance instead (dockyard.conf(5), IMAGE STORE):
//!
//! - `Runtime=sysbox-runc`: the graph driver (overlay2). Sysbox 0.6.7 predates
//!   its own work on the containerd store (nestybox/sysbox#1007 still skips
//!   tests known broken with it), and sysbox-mgr recognises a Docker
//!   container by its rootfs lying in an overlay2 data root
//!   (nestybox/sysbox-libs `dockerUtils.isDockerRootfs`), which a containerd
//!   snapshot is not.
//! - `Runtime=runc`: the containerd store, Docker's own default from 29 on,
//!   also with the engines before 29 that have it (24 to 28), so every
//!   engine a runc instance pins runs the store 29 gives a new user.
//!
//! Engines without the setting (before 24) get no choice at all. And
//! whatever is chosen, `dockyard-prepare up` keeps the graph driver on a
//! data root that already holds graph-driver data ([`GRAPH_DRIVER_DIRS`]).

use crate::instance::Runtime;

/// The daemon.json `features` key that selects the image store.
pub const SNAPSHOTTER_FEATURE: &str = "containerd-snapshotter";
/// daemon.json's `features` map.
pub const FEATURES_KEY: &str = "features";

/// The first major version whose dockerd takes `features.containerd-snapshotter`.
const FIRST_WITH_CONTAINERD_STORE: u32 = 24;

/// Directories of the data root that a graph driver fills: when one of them
/// is there and not empty, the data root was used with a graph driver and
/// keeps it (its images and containers are there). `vfs` included, unlike
/// moby's own check.
pub const GRAPH_DRIVER_DIRS: &[&str] = &[
    "overlay2",
    "fuse-overlayfs",
    "btrfs",
    "zfs",
    "vfs",
    "aufs",
    "devicemapper",
    "overlay",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStore {
    /// containerd's content store and snapshotters.
    Containerd,
    /// The classic graph driver (overlay2 on ext4 and xfs).
    GraphDriver,
}

impl ImageStore {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStore::Containerd => "containerd",
            ImageStore::GraphDriver => "graphdriver",
        }
    }

    pub fn parse(s: &str) -> Option<ImageStore> {
        match s {
            "containerd" => Some(ImageStore::Containerd),
            "graphdriver" => Some(ImageStore::GraphDriver),
            _ => None,
        }
    }

    /// The value of `features.containerd-snapshotter` that selects it.
    pub fn snapshotter_feature(self) -> bool {
        self == ImageStore::Containerd
    }
}

/// The major version of a Docker version string: `29` of `29.2.1`, `20` of
/// `20.10.24+dfsg1`. `None` when it does not start with a number.
pub fn major(version: &str) -> Option<u32> {
    let digits: &str = version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("");
    digits.parse().ok()
}

/// The image store an instance is told to use, or `None` when its engine
/// has no such setting (or its version says nothing Dockyard can read).
pub fn image_store(runtime: Runtime, docker_version: &str) -> Option<ImageStore> {
    if major(docker_version)? < FIRST_WITH_CONTAINERD_STORE {
        return None;
    }
    Some(match runtime {
        Runtime::SysboxRunc => ImageStore::GraphDriver,
        Runtime::Runc => ImageStore::Containerd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors() {
        assert_eq!(major("29.2.1"), Some(29));
        assert_eq!(major("20.10.24+dfsg1"), Some(20));
        assert_eq!(major("28.5.2+dfsg4"), Some(28));
        assert_eq!(major("v29"), None);
        assert_eq!(major(""), None);
    }

    #[test]
    fn choice_per_runtime_and_engine() {
        assert_eq!(
            image_store(Runtime::Runc, "29.2.1"),
            Some(ImageStore::Containerd)
        );
        assert_eq!(
            image_store(Runtime::Runc, "28.5.2+dfsg4"),
            Some(ImageStore::Containerd)
        );
        assert_eq!(
            image_store(Runtime::SysboxRunc, "29.2.1"),
            Some(ImageStore::GraphDriver)
        );
        // 20.10 has no containerd store: nothing to choose.
        assert_eq!(image_store(Runtime::Runc, "20.10.24+dfsg1"), None);
        assert_eq!(image_store(Runtime::SysboxRunc, "23.0.6"), None);
        for s in [ImageStore::Containerd, ImageStore::GraphDriver] {
            assert_eq!(ImageStore::parse(s.as_str()), Some(s));
        }
        assert_eq!(ImageStore::parse("overlay2"), None);
    }
}
