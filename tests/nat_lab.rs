//! The NAT lab itself behaves like the internet and home routers (root; CI runs as root): a cone
//! router keeps a host's port for every destination, a symmetric one picks a new port per
//! destination, and neither lets in what nobody inside asked for. The call tests build on it.

#[path = "common/natlab.rs"]
mod natlab;
#[path = "common/netns.rs"]
mod netns;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use natlab::{Lab, Nat, PUBLIC_IP, in_netns, udp_probe, udp_reflector};

#[test]
fn routers_translate_like_cone_and_symmetric_nats_and_drop_unsolicited_input() {
    let mut lab = Lab::new();
    let cone = lab.add_home(Nat::Cone);
    let sym = lab.add_home(Nat::Symmetric);
    let stop = Arc::new(AtomicBool::new(false));
    // Two reflectors on the internet, on two ports of the public node.
    let r1 = udp_reflector(&lab.public, 3478, stop.clone());
    let r2 = udp_reflector(&lab.public, 3479, stop.clone());
    let wait = Duration::from_secs(2);
    let seen = |home: usize, to: u16| {
        let h = &lab.homes[home];
        udp_probe(&h.host, 40000, &format!("{PUBLIC_IP}:{to}"), wait).expect("the reflector answered")
    };
    // Cone: the same public port towards both destinations, and it is the host's own port.
    let (a, b) = (seen(cone, 3478), seen(cone, 3479));
    let wan = &lab.homes[cone].wan_ip;
    assert_eq!(a, format!("{wan}:40000"), "the cone router kept the port");
    assert_eq!(a, b, "one mapping for every destination");
    // Symmetric: another port per destination (random, so almost never the host's).
    let (c, d) = (seen(sym, 3478), seen(sym, 3479));
    assert!(c.starts_with(&format!("{}:", lab.homes[sym].wan_ip)), "{c}");
    assert_ne!(c, d, "a new mapping per destination");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    r1.join().unwrap();
    r2.join().unwrap();

    // Unsolicited: the internet sends to the cone router's mapped port without the host having
    // written to it from there: dropped (the host's listener hears nothing).
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let listen = in_netns(&lab.homes[cone].host, move || {
        let s = std::net::UdpSocket::bind(("0.0.0.0", 40001)).unwrap();
        bound_tx.send(()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
        let mut buf = [0u8; 16];
        s.recv_from(&mut buf).is_ok()
    });
    bound_rx.recv().unwrap();
    let _ = udp_probe(&lab.public, 5555, &format!("{wan}:40001"), Duration::from_millis(100));
    assert!(!listen.join().unwrap(), "unsolicited input from the internet must not reach the home");

    // Cleanup: dropping the lab removes every namespace it made.
    let names: Vec<String> = std::iter::once(lab.public.name.clone())
        .chain(lab.homes.iter().flat_map(|h| [h.router.name.clone(), h.host.name.clone()]))
        .collect();
    drop(lab);
    let list = String::from_utf8(std::process::Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).unwrap();
    for n in names {
        assert!(!list.contains(&n), "{n} left behind");
    }
}
