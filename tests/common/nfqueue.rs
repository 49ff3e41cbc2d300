//! Delay, jitter, burst loss and rate limits on a namespace's forwarded packets, in userspace:
//! this kernel has no netem, so the router queues packets to us (iptables `NFQUEUE`, the mangle
//! table's FORWARD chain) and we give each its verdict (`NF_ACCEPT` once its delay is up,
//! `NF_DROP` when lost) with the same link model as the in-process relay (`netem.rs`). Spoken with
//! the kernel over a plain netlink socket (nfnetlink_queue), no library.
//!
//! Everything lives in the namespace the impairer was made for: its rules go with the namespace,
//! and a dropped impairer accepts what it holds and stops. `--queue-bypass` lets packets through
//! if nobody listens, so a test that dies early never blackholes its lab.
#![allow(dead_code)]

use std::collections::BinaryHeap;
use std::cmp::Reverse;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "netem.rs"]
pub mod netem;
pub use netem::{Impairment, NetemStats};
use netem::Netem;

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_CFG_CMD_UNBIND: u8 = 2;
const NFQNL_COPY_PACKET: u8 = 2;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;

/// One netlink socket bound to one queue.
struct QueueSocket {
    fd: std::os::fd::OwnedFd,
    queue: u16,
    seq: u32,
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align(out.len()), 0);
}

impl QueueSocket {
    fn open(queue: u16) -> std::io::Result<Self> {
        // SAFETY: plain socket(2); the result is checked and owned at once.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_NETFILTER) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl zeroed is valid (pid 0: the kernel assigns one).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr is a valid sockaddr_nl of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let size: libc::c_int = 8 << 20;
        // SAFETY: setsockopt with an int of the size given; failure only leaves the default.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        let mut s = QueueSocket { fd, queue, seq: 0 };
        s.config(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, libc::AF_INET as u8])?;
        // Copy the first 64 bytes of each packet: the IP header says how long it is.
        let mut params = 64u32.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_PACKET);
        s.config(NFQA_CFG_PARAMS, &params)?;
        s.config(NFQA_CFG_QUEUE_MAXLEN, &8192u32.to_be_bytes())?;
        Ok(s)
    }

    fn message(&mut self, kind: u16, flags: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        self.seq += 1;
        let mut m = vec![0u8; 16];
        m[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
        m[6..8].copy_from_slice(&flags.to_ne_bytes());
        m[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // nfgenmsg: family, version, the queue (big-endian).
        m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
        m.extend_from_slice(&self.queue.to_be_bytes());
        for (k, v) in attrs {
            attr(&mut m, *k, v);
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    fn send(&self, m: &[u8]) -> std::io::Result<()> {
        // SAFETY: m is a valid buffer of the length given; the kernel is the default destination.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), m.as_ptr() as *const libc::c_void, m.len(), 0) };
        if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
    }

    /// A config message, and the kernel's acknowledgement (an error says why it refused).
    fn config(&mut self, kind: u16, value: &[u8]) -> std::io::Result<()> {
        let m = self.message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, &[(kind, value)]);
        self.send(&m)?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = self.recv(&mut buf, Duration::from_secs(2))?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no acknowledgement from nfnetlink_queue"));
            }
            for (kind, body) in messages(&buf[..n]) {
                if kind == NLMSG_ERROR && body.len() >= 4 {
                    let code = i32::from_ne_bytes(body[0..4].try_into().unwrap_or_default());
                    return if code == 0 { Ok(()) } else { Err(std::io::Error::from_raw_os_error(-code)) };
                }
            }
        }
    }

    /// Waits up to `timeout` for messages; 0 bytes: none came.
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> std::io::Result<usize> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().clamp(0, 1000) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r <= 0 {
            return Ok(0);
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            // ENOBUFS: the kernel dropped some of what it queued to us; the packets stay queued
            // until their verdict, so carry on.
            return if e.raw_os_error() == Some(libc::ENOBUFS) { Ok(0) } else { Err(e) };
        }
        Ok(n as usize)
    }

    fn verdict(&mut self, id: u32, verdict: u32) {
        let mut v = verdict.to_be_bytes().to_vec();
        v.extend_from_slice(&id.to_be_bytes());
        let m = self.message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, &[(NFQA_VERDICT_HDR, &v)]);
        let _ = self.send(&m);
    }
}

impl Drop for QueueSocket {
    fn drop(&mut self) {
        let m = self.message(NFQNL_MSG_CONFIG, NLM_F_REQUEST, &[(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_UNBIND, 0, 0, 2])]);
        let _ = self.send(&m);
    }
}

/// The netlink messages in a buffer: (type, body after the header).
fn messages(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or_default()) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap_or_default());
        out.push((kind, &buf[at + 16..at + len]));
        at += align(len);
    }
    out
}

/// A queued packet's id and IP length, from a NFQNL_MSG_PACKET body.
fn packet(body: &[u8]) -> Option<(u32, usize)> {
    let mut at = 4; // nfgenmsg
    let (mut id, mut len) = (None, None);
    while at + 4 <= body.len() {
        let alen = u16::from_ne_bytes([body[at], body[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([body[at + 2], body[at + 3]]) & 0x3fff;
        if alen < 4 || at + alen > body.len() {
            break;
        }
        let value = &body[at + 4..at + alen];
        match kind {
            NFQA_PACKET_HDR if value.len() >= 4 => id = Some(u32::from_be_bytes(value[0..4].try_into().ok()?)),
            NFQA_PAYLOAD if value.len() >= 4 => len = Some(u16::from_be_bytes([value[2], value[3]]) as usize),
            _ => {}
        }
        at += align(alen);
    }
    Some((id?, len.unwrap_or(1200)))
}

/// One direction's impairer: a thread in the namespace, giving verdicts.
struct Direction {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<NetemStats>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Direction {
    fn start(netns: &str, queue: u16, imp: Impairment, seed: u64) -> Direction {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(NetemStats::default()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = format!("/var/run/netns/{netns}");
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::spawn(move || {
                let socket = enter(&path).and_then(|()| QueueSocket::open(queue));
                let mut socket = match socket {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                run(&mut socket, &imp, seed, &stop, &stats);
            })
        };
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("NFQUEUE {queue} in {netns}: {e}"),
            Err(_) => panic!("NFQUEUE {queue} in {netns}: the impairer did not start"),
        }
        Direction { stop, stats, thread: Some(thread) }
    }
}

impl Drop for Direction {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Moves this thread into the network namespace at `path`.
fn enter(path: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: setns on a namespace file we hold open; it affects this thread only.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn run(socket: &mut QueueSocket, imp: &Impairment, seed: u64, stop: &AtomicBool, stats: &Mutex<NetemStats>) {
    let mut netem = Netem::new(seed);
    // (due, arrival order, packet id): released in time order, ties in arrival order.
    let mut held: BinaryHeap<Reverse<(Instant, u64, u32)>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while let Some(Reverse((due, _, id))) = held.peek().copied() {
            if due > now {
                break;
            }
            held.pop();
            socket.verdict(id, NF_ACCEPT);
        }
        let wait = held.peek().map_or(Duration::from_millis(50), |Reverse((due, _, _))| due.saturating_duration_since(now));
        let n = match socket.recv(&mut buf, wait.min(Duration::from_millis(50))) {
            Ok(n) => n,
            Err(_) => break,
        };
        let now = Instant::now();
        for (kind, body) in messages(&buf[..n]) {
            if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
                continue;
            }
            let Some((id, len)) = packet(body) else { continue };
            // A duplicate cannot be made from here: the first copy's time is the packet's.
            match netem.send(imp, now, len).first() {
                None => socket.verdict(id, NF_DROP),
                Some(at) => {
                    order += 1;
                    held.push(Reverse((*at, order, id)));
                }
            }
        }
        *stats.lock().unwrap_or_else(|p| p.into_inner()) = netem.stats();
    }
    // Stopping: what is held goes through.
    for Reverse((_, _, id)) in held.into_vec() {
        socket.verdict(id, NF_ACCEPT);
    }
}

/// A router's internet link impaired both ways: packets leaving by `wan` and arriving by it.
pub struct LinkImpairer {
    up: Direction,
    down: Direction,
}

impl LinkImpairer {
    /// Queues `netns`'s forwarded packets out of and into interface `wan` (queues `queue` and
    /// `queue + 1`) and impairs each direction with `imp` (seeds `seed` and `seed + 1`).
    pub fn start(netns: &str, wan: &str, queue: u16, imp: Impairment, seed: u64) -> LinkImpairer {
        let up = Direction::start(netns, queue, imp, seed);
        let down = Direction::start(netns, queue + 1, imp, seed + 1);
        for (dir, q) in [("-o", queue), ("-i", queue + 1)] {
            let q = q.to_string();
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", netns, "iptables", "-t", "mangle", "-A", "FORWARD", dir, wan])
                .args(["-j", "NFQUEUE", "--queue-num", &q, "--queue-bypass"])
                .output()
                .expect("iptables");
            assert!(out.status.success(), "NFQUEUE rule in {netns}: {}", String::from_utf8_lossy(&out.stderr));
        }
        LinkImpairer { up, down }
    }

    /// What each direction did: (out of the home, into it).
    pub fn stats(&self) -> (NetemStats, NetemStats) {
        let get = |d: &Direction| *d.stats.lock().unwrap_or_else(|p| p.into_inner());
        (get(&self.up), get(&self.down))
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)] // a bench includes this file without its tests
    use super::*;

    #[test]
    fn netlink_messages_and_packet_attributes_parse_and_garbage_does_not() {
        // A packet message: header, nfgenmsg, PACKET_HDR (id 7), PAYLOAD (an IPv4 header, 84 bytes).
        let mut body = vec![0u8, 0, 0, 3];
        attr(&mut body, NFQA_PACKET_HDR, &[0, 0, 0, 7, 0x08, 0, 3]);
        attr(&mut body, NFQA_PAYLOAD, &[0x45, 0, 0, 84, 0, 0]);
        let mut m = vec![0u8; 16];
        m[0..4].copy_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&(NFNL_SUBSYS_QUEUE << 8).to_ne_bytes());
        m.extend_from_slice(&body);
        let msgs = messages(&m);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].0, (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET);
        assert_eq!(packet(msgs[0].1), Some((7, 84)));
        assert!(messages(&m[..20]).is_empty(), "cut short");
        assert_eq!(packet(&[0, 0, 0, 3, 200, 0, 1, 0]), None, "an attribute past the end");
    }
}
