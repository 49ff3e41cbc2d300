//! The NAT lab: network namespaces that model the internet and home routers. Everything lives in
//! namespaces this test made (deleted on drop, also when the test panics: deleting a namespace
//! deletes its interfaces and its iptables rules); no packet leaves them.
//!
//! ```text
//!   "internet" (ns pub, bridge br0, 11.0.0.1/24): public hail nodes
//!        │ 11.0.0.(10+n)
//!   [carrier n (ns cN): a cone NAT, 100.64.n.1/24 inside: carrier-grade NAT homes only]
//!        │
//!   router n (ns rN): ip_forward, MASQUERADE out of `wan` (cone: port-preserving;
//!        │            symmetric: --random-fully), unsolicited input from `wan` dropped
//!   home n (ns hN): 192.168.n.2/24, default route via 192.168.n.1
//! ```
//!
//! 11.0.0.0/24 stands for "a public address" (the daemons treat private ranges as LAN); it exists
//! only inside these namespaces. [`Lab::with_internet`] puts the "internet" on another /24 instead,
//! e.g. carrier-grade NAT space (100.64.0.0/24): a company network or an ISP's NAT, where the
//! public node's address is not publicly routable.
#![allow(dead_code)]

use std::process::Command;

use super::netns::{Netns, ip, require_root, sweep_stale};

#[path = "nfqueue.rs"]
pub mod nfqueue;

/// How a home router translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Endpoint-independent mapping (Linux MASQUERADE keeps the source port when it can).
    Cone,
    /// A new port per destination (`--random-fully`).
    Symmetric,
    /// A cone home router behind a cone carrier-grade NAT: two layers, 100.64.n.0/24 (shared
    /// address space, RFC 6598) between them, the carrier's address on the internet.
    CarrierCone,
}

/// Runs `ip netns exec NS cmd args…`, panicking with stderr on failure.
#[track_caller]
pub fn run_in(ns: &Netns, cmd: &str, args: &[&str]) -> String {
    let out = Command::new("ip").args(["netns", "exec", &ns.name, cmd]).args(args).output().expect("ip netns exec");
    assert!(
        out.status.success(),
        "{} {cmd} {}: {}",
        ns.name,
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A home behind its router.
pub struct Home {
    /// The router.
    pub router: Netns,
    /// The home network, where the user's node runs.
    pub host: Netns,
    /// The host's address.
    pub host_ip: String,
    /// The router's public address.
    pub wan_ip: String,
    /// More hosts on the same LAN, with their addresses.
    pub others: Vec<(Netns, String)>,
    /// The carrier-grade NAT in front of the router ([`Nat::CarrierCone`]).
    pub carrier: Option<Netns>,
}

/// The lab.
pub struct Lab {
    /// The internet (public nodes run here).
    pub public: Netns,
    /// The homes, in the order added. Dropped before `public` (fields drop in order).
    pub homes: Vec<Home>,
    /// Tells this lab's namespaces from other labs' in the same test process.
    tag: String,
    /// The internet segment's /24, as its first three octets (`11.0.0`).
    net: String,
}

static LABS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The public segment's first address (a public node).
pub const PUBLIC_IP: &str = "11.0.0.1";

impl Lab {
    /// The internet segment (11.0.0.0/24), no homes yet.
    pub fn new() -> Lab {
        Lab::with_internet("11.0.0")
    }

    /// The internet segment on `net`.0/24 (`net` is three octets, e.g. `100.64.0`), no homes yet.
    pub fn with_internet(net: &str) -> Lab {
        require_root();
        sweep_stale();
        let tag = format!("L{}", LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let public = Netns::new(&format!("{tag}pub"));
        ip(&["-n", &public.name, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &public.name, "addr", "add", &format!("{net}.1/24"), "dev", "br0"]);
        ip(&["-n", &public.name, "link", "set", "br0", "up"]);
        Lab { public, homes: Vec::new(), tag, net: net.to_owned() }
    }

    /// The internet segment's first address (a public node): [`PUBLIC_IP`] in a [`Lab::new`] lab.
    pub fn public_ip(&self) -> String {
        format!("{}.1", self.net)
    }

    /// Adds home `n` (1–9) behind a router of kind `nat`; returns its index in `homes`.
    pub fn add_home(&mut self, nat: Nat) -> usize {
        let n = self.homes.len() + 1;
        let router = Netns::new(&format!("{}r{n}", self.tag));
        let host = Netns::new(&format!("{}h{n}", self.tag));
        let wan_ip = format!("{}.{}", self.net, 10 + n);
        let host_ip = format!("192.168.{n}.2");
        // WAN: the router (or the carrier's NAT in front of it) ↔ the internet's bridge.
        let carrier = (nat == Nat::CarrierCone).then(|| Netns::new(&format!("{}c{n}", self.tag)));
        let edge = carrier.as_ref().unwrap_or(&router);
        let port = format!("p{n}");
        ip(&["link", "add", "wan", "netns", &edge.name, "type", "veth", "peer", "name", &port, "netns", &self.public.name]);
        ip(&["-n", &self.public.name, "link", "set", &port, "master", "br0"]);
        ip(&["-n", &self.public.name, "link", "set", &port, "up"]);
        ip(&["-n", &edge.name, "addr", "add", &format!("{wan_ip}/24"), "dev", "wan"]);
        ip(&["-n", &edge.name, "link", "set", "wan", "up"]);
        if let Some(carrier) = &carrier {
            // The carrier's NAT: shared address space inside, the router's WAN on it.
            ip(&["link", "add", "inside", "netns", &carrier.name, "type", "veth", "peer", "name", "wan", "netns", &router.name]);
            ip(&["-n", &carrier.name, "addr", "add", &format!("100.64.{n}.1/24"), "dev", "inside"]);
            ip(&["-n", &carrier.name, "link", "set", "inside", "up"]);
            ip(&["-n", &router.name, "addr", "add", &format!("100.64.{n}.2/24"), "dev", "wan"]);
            ip(&["-n", &router.name, "link", "set", "wan", "up"]);
            ip(&["-n", &router.name, "route", "add", "default", "via", &format!("100.64.{n}.1")]);
            translate(carrier, Nat::Cone);
        }
        // LAN: a bridge in the router, the home's hosts on it.
        ip(&["-n", &router.name, "link", "add", "lanbr", "type", "bridge"]);
        ip(&["-n", &router.name, "addr", "add", &format!("192.168.{n}.1/24"), "dev", "lanbr"]);
        ip(&["-n", &router.name, "link", "set", "lanbr", "up"]);
        attach_host(&router, &host, n, 2);
        translate(&router, if nat == Nat::CarrierCone { Nat::Cone } else { nat });
        self.homes.push(Home { router, host, host_ip, wan_ip, others: Vec::new(), carrier });
        self.homes.len() - 1
    }

    /// Random loss on home `home`'s internet link, both ways (iptables `statistic`: this kernel has
    /// no netem). The rule lives in the router's namespace and goes with it.
    pub fn impair(&self, home: usize, loss: f64) {
        let p = format!("{loss}");
        run_in(&self.homes[home].router, "iptables", &["-I", "FORWARD", "1", "-m", "statistic", "--mode", "random", "--probability", &p, "-j", "DROP"]);
    }

    /// Delay, jitter and loss (`imp`, the in-process relay's link model) on home `home`'s internet
    /// link, each way, given in userspace through NFQUEUE (`nfqueue.rs`). Stops when the returned
    /// impairer is dropped; the rules go with the router's namespace.
    pub fn impair_link(&self, home: usize, imp: nfqueue::Impairment, seed: u64) -> nfqueue::LinkImpairer {
        nfqueue::LinkImpairer::start(&self.homes[home].router.name, "wan", 10 + 2 * home as u16, imp, seed)
    }

    /// Another host on home `home`'s LAN (same router, same segment: mDNS reaches across);
    /// returns its index in that home's `others`.
    pub fn add_host(&mut self, home: usize) -> usize {
        let n = home + 1;
        let h = &mut self.homes[home];
        let k = h.others.len() + 3;
        let ns = Netns::new(&format!("{}h{n}x{k}", self.tag));
        attach_host(&h.router, &ns, n, k);
        h.others.push((ns, format!("192.168.{n}.{k}")));
        h.others.len() - 1
    }
}

/// A NAT in `ns`: forward, translate out of `wan` (cone or symmetric), drop what nobody asked for.
fn translate(ns: &Netns, nat: Nat) {
    run_in(ns, "sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    let mut masquerade = vec!["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"];
    if nat == Nat::Symmetric {
        masquerade.push("--random-fully");
    }
    run_in(ns, "iptables", &masquerade);
    run_in(ns, "iptables", &["-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]);
    run_in(ns, "iptables", &["-A", "FORWARD", "-i", "wan", "-j", "DROP"]);
    run_in(ns, "iptables", &["-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]);
    run_in(ns, "iptables", &["-A", "INPUT", "-i", "wan", "-p", "icmp", "-j", "ACCEPT"]);
    run_in(ns, "iptables", &["-A", "INPUT", "-i", "wan", "-j", "DROP"]);
}

/// Puts `host` on router `router`'s LAN bridge (home `n`) at 192.168.n.k.
fn attach_host(router: &Netns, host: &Netns, n: usize, k: usize) {
    let port = format!("lan{k}");
    ip(&["link", "add", &port, "netns", &router.name, "type", "veth", "peer", "name", "eth0", "netns", &host.name]);
    ip(&["-n", &router.name, "link", "set", &port, "master", "lanbr"]);
    ip(&["-n", &router.name, "link", "set", &port, "up"]);
    ip(&["-n", &host.name, "addr", "add", &format!("192.168.{n}.{k}/24"), "dev", "eth0"]);
    ip(&["-n", &host.name, "link", "set", "eth0", "up"]);
    ip(&["-n", &host.name, "route", "add", "default", "via", &format!("192.168.{n}.1")]);
    ip(&["-n", &host.name, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
}

/// Runs `f` on a thread that has entered `ns`'s network namespace: sockets it opens live there.
pub fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a valid namespace fd changes only this thread's network namespace.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// From `ns`, port `from_port`: sends "probe" to `to` and returns the first answer within
/// `wait`, if any.
pub fn udp_probe(ns: &Netns, from_port: u16, to: &str, wait: std::time::Duration) -> Option<String> {
    let to: std::net::SocketAddr = to.parse().unwrap();
    in_netns(ns, move || {
        let s = std::net::UdpSocket::bind(("0.0.0.0", from_port)).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        s.send_to(b"probe", to).unwrap();
        let mut buf = [0u8; 100];
        s.recv_from(&mut buf).ok().map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .join()
    .unwrap()
}

/// A UDP reflector in `ns` on `port`: answers each datagram with the sender's address as it saw
/// it, until `stop` is set.
/// Returns once the socket is bound.
pub fn udp_reflector(ns: &Netns, port: u16, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<()> {
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let handle = in_netns(ns, move || {
        let s = std::net::UdpSocket::bind(("0.0.0.0", port)).unwrap();
        let _ = bound_tx.send(());
        s.set_read_timeout(Some(std::time::Duration::from_millis(100))).unwrap();
        let mut buf = [0u8; 100];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((_, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(from.to_string().as_bytes(), from);
            }
        }
    });
    bound_rx.recv().expect("the reflector bound its socket");
    handle
}
