//! A rootless instance's isolation with real traffic, on both firewall
//! backends: a process of its user connects (or fails to) from a
//! throw-away network namespace that plays the host, to a "container" on
//! a rootful instance's bridge, to the host's own addresses, to an
//! "upstream" namespace behind a veth, and to DNS on the host. Every
//! refusal is preceded by the same request succeeding where it is allowed
//! (as root, as another user, or as the same user once admitted).
//!
//! Addresses: 172.22.N.0/24 and 172.2x.0.0/16 (private) for instances,
//! 198.51.100.0/24 (TEST-NET-2) between the host and upstream, loopback.

mod common;

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{require_root, NetNs};

const PORT: u16 = 8080;
const DNS: u16 = 53;
/// The host's address toward upstream, and upstream's.
const HOST_ADDR: &str = "198.51.100.1";
const UPSTREAM_ADDR: &str = "198.51.100.2";
/// The rootful instance `dy1`: its bridge, gateway, container, pool.
const DY1_THIRD: u8 = 61;
const DY1_POOL: &str = "172.26.0.0/16";
const NOBODY: u32 = 65534;

/// A system user for the rootless instance, as `dockyard-prepare up` makes
/// it (its name is the instance's account), removed on drop.
struct TestUser {
    instance: String,
    account: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    fn create(prefix: char) -> TestUser {
        // Instance names are at most 7 characters; users are host-wide, so
        // unique per run and backend.
        let instance = format!("{prefix}{:05}", std::process::id() % 100_000);
        let account = format!("{instance}_docker");
        let _ = Command::new("userdel").arg(&account).output();
        let r = common::run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            &format!("Dockyard instance {instance}"),
            &account,
        ]));
        assert_eq!(r.code, 0, "useradd {account}: {}", r.stderr);
        let u = nix::unistd::User::from_name(&account)
            .expect("lookup")
            .expect("the user just made");
        TestUser {
            instance,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            account,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.account).output();
        let _ = Command::new("groupdel").arg(&self.account).output();
    }
}

/// Moves the calling thread into the named network namespace.
fn enter(ns: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns(2) with a valid descriptor changes only this thread's
    // network namespace; the thread is the server's own.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Servers answering "ok" inside a namespace, stopped on drop.
struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Servers {
    fn new() -> Servers {
        Servers {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    /// Returns once the socket is bound.
    fn tcp(&mut self, ns: &str, addr: &str, port: u16) {
        let (stop, ns, addr) = (self.stop.clone(), ns.to_string(), addr.to_string());
        let (ready, bound) = mpsc::channel();
        self.threads.push(std::thread::spawn(move || {
            let listener = enter(&ns)
                .and_then(|()| TcpListener::bind((addr.as_str(), port)))
                .and_then(|l| l.set_nonblocking(true).map(|()| l));
            let listener = match listener {
                Ok(l) => {
                    let _ = ready.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("tcp {addr}:{port} in {ns}: {e}")));
                    return;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(b"ok");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
        bound.recv().expect("server thread").expect("bound");
    }

    fn udp(&mut self, ns: &str, addr: &str, port: u16) {
        let (stop, ns, addr) = (self.stop.clone(), ns.to_string(), addr.to_string());
        let (ready, bound) = mpsc::channel();
        self.threads.push(std::thread::spawn(move || {
            let sock = enter(&ns)
                .and_then(|()| UdpSocket::bind((addr.as_str(), port)))
                .and_then(|s| {
                    s.set_read_timeout(Some(Duration::from_millis(20)))
                        .map(|()| s)
                });
            let sock = match sock {
                Ok(s) => {
                    let _ = ready.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("udp {addr}:{port} in {ns}: {e}")));
                    return;
                }
            };
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(b"ok", from);
                }
            }
        }));
        bound.recv().expect("server thread").expect("bound");
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Who opens the connection.
#[derive(Clone, Copy, Debug)]
enum As {
    Root,
    User(u32, u32),
}

/// Does a request from the host namespace get its "ok"? A dropped SYN
/// makes the connect hang (TCP retries it), so two seconds decide.
fn answered(ns: &NetNs, who: As, proto: &str, addr: &str, port: u16) -> bool {
    let script = format!("exec 3<>/dev/{proto}/{addr}/{port} && printf q >&3 && head -c 2 <&3");
    let mut c = ns.cmd("timeout");
    c.arg("2");
    if let As::User(uid, gid) = who {
        c.args([
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
        ]);
    }
    c.args(["bash", "-c", &script]);
    let r = common::run(&mut c);
    r.code == 0 && r.stdout == "ok"
}

fn network(ns: &NetNs, args: &[String]) -> common::Run {
    let mut v = vec!["network"];
    v.extend(args.iter().map(String::as_str));
    ns.helper(&v)
}

fn dy1_args(action: &str) -> Vec<String> {
    [
        action,
        "--instance",
        "dy1",
        "--bridge-cidr",
        &format!("172.22.{DY1_THIRD}.1/24"),
        "--fixed-cidr",
        &format!("172.22.{DY1_THIRD}.0/24"),
        "--pool",
        DY1_POOL,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn rootless_args(action: &str, user: &TestUser, reach: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        action,
        "--instance",
        &user.instance,
        "--bridge-cidr",
        "172.22.62.1/24",
        "--fixed-cidr",
        "172.22.62.0/24",
        "--pool",
        "172.27.0.0/16",
        "--rootless-user",
        &user.account,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for r in reach {
        a.extend(["--reach".to_string(), r.to_string()]);
    }
    a
}

/// `ip link … netns` and addresses for a peer namespace behind a veth.
fn veth(host: &NetNs, peer: &NetNs, host_if: &str, host_addr: Option<&str>, peer_addr: &str) {
    host.ok(&[
        "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
    ]);
    if let Some(a) = host_addr {
        host.ok(&["ip", "addr", "add", a, "dev", host_if]);
    }
    host.ok(&["ip", "link", "set", host_if, "up"]);
    peer.ok(&["ip", "addr", "add", peer_addr, "dev", "eth0"]);
    peer.ok(&["ip", "link", "set", "eth0", "up"]);
    peer.ok(&["ip", "link", "set", "lo", "up"]);
}

fn isolates_a_rootless_instance(backend: &'static str, prefix: char) {
    let user = TestUser::create(prefix);
    let me = As::User(user.uid, user.gid);
    let nobody = As::User(NOBODY, NOBODY);
    let host = NetNs::with_backend(backend);
    let container = NetNs::new();
    let upstream = NetNs::new();
    host.ok(&["ip", "link", "set", "lo", "up"]);

    // The rootless instance starts first; the rootful one it must be kept
    // out of starts after it.
    let r = network(&host, &rootless_args("up", &user, &[]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("rootless"), "{}", r.stderr);
    let links = host.ok(&["ip", "-o", "link", "show"]);
    assert!(!links.contains(&user.instance), "no bridge: {links}");
    let r = network(&host, &dy1_args("up"));
    assert_eq!(r.code, 0, "{}", r.stderr);

    let gateway = format!("172.22.{DY1_THIRD}.1");
    let in_dy1 = format!("172.22.{DY1_THIRD}.2");
    veth(&host, &container, "dyc0", None, &format!("{in_dy1}/24"));
    host.ok(&["ip", "link", "set", "dyc0", "master", "dy1_docker0"]);
    veth(
        &host,
        &upstream,
        "dyu0",
        Some(&format!("{HOST_ADDR}/24")),
        &format!("{UPSTREAM_ADDR}/24"),
    );
    let mut servers = Servers::new();
    servers.tcp(&container.name, "0.0.0.0", PORT);
    servers.tcp(&upstream.name, "0.0.0.0", PORT);
    servers.tcp(&host.name, "0.0.0.0", PORT);
    servers.tcp(&host.name, "127.0.0.1", DNS);
    servers.udp(&host.name, "127.0.0.1", DNS);

    // Another instance's container and every address of the host: open
    // to root and to other users, closed to the rootless instance's user.
    for addr in [in_dy1.as_str(), "127.0.0.1", HOST_ADDR, gateway.as_str()] {
        assert!(
            answered(&host, As::Root, "tcp", addr, PORT),
            "root to {addr}"
        );
        assert!(
            answered(&host, nobody, "tcp", addr, PORT),
            "nobody to {addr}"
        );
        assert!(
            !answered(&host, me, "tcp", addr, PORT),
            "{backend}: the rootless user reached {addr}:{PORT}"
        );
    }
    // Upstream and DNS on the host stay open to it.
    assert!(answered(&host, me, "tcp", UPSTREAM_ADDR, PORT), "{backend}");
    assert!(answered(&host, me, "udp", "127.0.0.1", DNS), "{backend}");
    assert!(answered(&host, me, "tcp", "127.0.0.1", DNS), "{backend}");

    // dy1 names it in AllowFrom=: its next start reaches dy1's networks,
    // and still nothing else of the host.
    let reach = [format!("172.22.{DY1_THIRD}.0/24"), DY1_POOL.to_string()];
    let reach: Vec<&str> = reach.iter().map(String::as_str).collect();
    let r = network(&host, &rootless_args("up", &user, &reach));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(answered(&host, me, "tcp", &in_dy1, PORT), "{backend}");
    assert!(!answered(&host, me, "tcp", "127.0.0.1", PORT), "{backend}");
    assert!(!answered(&host, me, "tcp", &gateway, PORT), "{backend}");
    // A restart changes nothing.
    let r = network(&host, &rootless_args("up", &user, &reach));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("were already in place"), "{}", r.stderr);

    // dy1 stops and starts again while it runs: still kept to its reach.
    let r = network(&host, &dy1_args("down"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = network(&host, &rootless_args("up", &user, &[]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = network(&host, &dy1_args("up"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    host.ok(&["ip", "link", "set", "dyc0", "master", "dy1_docker0"]);
    assert!(answered(&host, As::Root, "tcp", &in_dy1, PORT), "{backend}");
    assert!(!answered(&host, me, "tcp", &in_dy1, PORT), "{backend}");

    // A stop with nothing but the name takes every rule of it, and its
    // user is a user like any other again.
    let r = host.helper(&["network", "down", "--instance", &user.instance]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(answered(&host, me, "tcp", "127.0.0.1", PORT), "{backend}");
    let tag = format!("dockyard:{}", user.instance);
    assert!(!host.ok(&["iptables-save"]).contains(&tag));
    if backend == "nftables" {
        assert!(!host.ok(&["nft", "list", "ruleset"]).contains(&tag));
    }
    let r = network(&host, &dy1_args("down"));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn iptables_keeps_a_rootless_instance_to_itself() {
    if !require_root("iptables_keeps_a_rootless_instance_to_itself") {
        return;
    }
    isolates_a_rootless_instance("iptables", 'i');
}

#[test]
fn nftables_keeps_a_rootless_instance_to_itself() {
    if !require_root("nftables_keeps_a_rootless_instance_to_itself")
        || common::sh("command -v nft").code != 0
    {
        return;
    }
    isolates_a_rootless_instance("nftables", 'n');
}

/// Its user must exist before its rules can key on it: refused, with the
/// fix named, and nothing changed.
#[test]
fn up_refuses_a_rootless_instance_without_its_user() {
    if !require_root("up_refuses_a_rootless_instance_without_its_user") {
        return;
    }
    let host = NetNs::new();
    let instance = format!("u{:05}", std::process::id() % 100_000);
    let account = format!("{instance}_docker");
    let _ = Command::new("userdel").arg(&account).output();
    let args: Vec<String> = [
        "up",
        "--instance",
        &instance,
        "--bridge-cidr",
        "172.22.63.1/24",
        "--fixed-cidr",
        "172.22.63.0/24",
        "--pool",
        "172.28.0.0/16",
        "--rootless-user",
        &account,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = network(&host, &args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("its user {account}, which does not exist"))
            && r.stderr.contains("dockyard-prepare up"),
        "{}",
        r.stderr
    );
    assert!(!host.ok(&["iptables-save"]).contains("dockyard"));
    // Another account than its own is a bad command line.
    let mut other = args.clone();
    let last = other.len() - 1;
    other[last] = "root".into();
    let r = network(&host, &other);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--rootless-user"), "{}", r.stderr);
}
