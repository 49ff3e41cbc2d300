//! Network namespaces made by a test, removed when dropped (also when the test panics). Nothing is
//! ever configured outside them: veth pairs are created with both ends already inside.
#![allow(dead_code)]

use std::process::Command;

/// Runs `ip args…`, panicking with its stderr on failure.
#[track_caller]
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Fails the test clearly when it cannot make namespaces.
pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test builds network namespaces and needs root (CI runs as root)");
}

/// Removes namespaces left by earlier runs of this suite that died before cleaning up (their pid
/// is in the name and no longer runs).
pub fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("hailt") else { continue };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(pid) = pid.parse::<u32>() {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
            }
        }
    }
}

/// One namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `hailt<pid><tag>`, with loopback up.
    pub fn new(tag: &str) -> Netns {
        let name = format!("hailt{}{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// The command prefix that runs a program inside.
    pub fn exec(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A veth pair between `a` and `b` (one segment), with addresses `a_ip`/24 and `b_ip`/24 and a
/// multicast route on each end. Interface names must be at most 15 bytes.
pub fn link(a: &Netns, a_if: &str, a_ip: &str, b: &Netns, b_if: &str, b_ip: &str) {
    ip(&["link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns", &b.name]);
    for (ns, ifname, addr) in [(a, a_if, a_ip), (b, b_if, b_ip)] {
        ip(&["-n", &ns.name, "addr", "add", &format!("{addr}/24"), "dev", ifname]);
        ip(&["-n", &ns.name, "link", "set", ifname, "up"]);
        ip(&["-n", &ns.name, "route", "add", "224.0.0.0/4", "dev", ifname]);
    }
}
