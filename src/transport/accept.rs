//! Accepting QUIC connections on the call endpoint without letting a flood hold every slot.
//!
//! Every incoming connection costs state until it names a call (or a reflect request) on its first
//! stream. A flood of Initials from spoofed source addresses would hold that state until QUIC's
//! handshake timeout, so:
//!
//! - the whole accept (QUIC handshake **and** the stream header) is bounded by [`ACCEPT_TIMEOUT`];
//! - addresses QUIC has not validated get a stateless Retry once a few unvalidated connections are
//!   pending: a spoofed source never returns the token, so it costs us one packet and no slot;
//! - validated connections have their own slots, capped in total and per source IP, so spoofed
//!   traffic never starves a real caller;
//! - reflect requests (`super::reflect`) give their call slot back as soon as they are recognised and
//!   are answered within a budget of their own.
//!
//! [`AcceptBudget`] holds the rules (sans-IO: it is told the time); [`accept_calls`] is the thin loop
//! that applies them to a quinn endpoint.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::channel::{CLOSE_UNWANTED, CallStream, ChannelError, StreamRequest, read_request};
use crate::call_id::CallId;

/// How long an incoming connection may take, from its first packet, to finish the QUIC handshake
/// and send its stream header.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The accept limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptLimits {
    /// Unvalidated connections pending at once before new unvalidated ones must do a Retry.
    pub unvalidated_before_retry: usize,
    /// Validated connections pending at once, in total.
    pub validated: usize,
    /// Validated connections pending at once from one IP.
    pub validated_per_ip: usize,
    /// Reflect answers per [`REFLECT_WINDOW`], in total.
    pub reflects: usize,
    /// Reflect answers per [`REFLECT_WINDOW`] to one IP.
    pub reflects_per_ip: usize,
}

/// The window of the reflect budget.
pub const REFLECT_WINDOW: Duration = Duration::from_secs(10);
/// Most IPs the reflect budget remembers (the stalest are forgotten first).
const REFLECT_TRACKED: usize = 4096;

impl Default for AcceptLimits {
    fn default() -> Self {
        AcceptLimits {
            unvalidated_before_retry: 4,
            validated: 16,
            validated_per_ip: 4,
            reflects: 200,
            reflects_per_ip: 5,
        }
    }
}

/// What to do with an incoming connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Take it; it holds a slot until [`AcceptBudget::release`].
    Accept(Slot),
    /// Ask the client to prove its address first (stateless Retry).
    Retry,
    /// Refuse it.
    Refuse,
}

/// The kind of slot an accepted connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Its address is not validated yet (no Retry was needed).
    Unvalidated,
    /// Its address is validated.
    Validated,
}

/// The accept rules: pending connections by kind and source IP, and the reflect budget.
#[derive(Debug, Default)]
pub struct AcceptBudget {
    limits: AcceptLimits,
    unvalidated: usize,
    validated: usize,
    validated_by_ip: HashMap<IpAddr, usize>,
    reflects: VecDeque<Instant>,
    reflects_by_ip: HashMap<IpAddr, VecDeque<Instant>>,
}

impl AcceptBudget {
    /// A budget with nothing pending.
    pub fn new(limits: AcceptLimits) -> Self {
        AcceptBudget { limits, ..Self::default() }
    }

    /// Decides on a connection from `ip`; `validated` says whether QUIC has validated the address
    /// (it carried a Retry token), `may_retry` whether a Retry is still possible.
    pub fn admit(&mut self, ip: IpAddr, validated: bool, may_retry: bool) -> Admission {
        if !validated {
            if self.unvalidated < self.limits.unvalidated_before_retry {
                self.unvalidated += 1;
                return Admission::Accept(Slot::Unvalidated);
            }
            return if may_retry { Admission::Retry } else { Admission::Refuse };
        }
        let from_ip = self.validated_by_ip.get(&ip).copied().unwrap_or(0);
        if self.validated >= self.limits.validated || from_ip >= self.limits.validated_per_ip {
            return Admission::Refuse;
        }
        self.validated += 1;
        *self.validated_by_ip.entry(ip).or_default() += 1;
        Admission::Accept(Slot::Validated)
    }

    /// A connection admitted with `slot` from `ip` is done (accepted, refused or timed out).
    pub fn release(&mut self, ip: IpAddr, slot: Slot) {
        match slot {
            Slot::Unvalidated => self.unvalidated = self.unvalidated.saturating_sub(1),
            Slot::Validated => {
                self.validated = self.validated.saturating_sub(1);
                if let Some(n) = self.validated_by_ip.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.validated_by_ip.remove(&ip);
                    }
                }
            }
        }
    }

    /// Counts a reflect answer to `ip` at `now`; `false` when over the reflect budget.
    pub fn allow_reflect(&mut self, ip: IpAddr, now: Instant) -> bool {
        prune(&mut self.reflects, now);
        if self.reflects.len() >= self.limits.reflects {
            return false;
        }
        if !self.reflects_by_ip.contains_key(&ip) && self.reflects_by_ip.len() >= REFLECT_TRACKED {
            self.reflects_by_ip.retain(|_, q| {
                prune(q, now);
                !q.is_empty()
            });
            if self.reflects_by_ip.len() >= REFLECT_TRACKED {
                return false;
            }
        }
        let q = self.reflects_by_ip.entry(ip).or_default();
        prune(q, now);
        if q.len() >= self.limits.reflects_per_ip {
            return false;
        }
        q.push_back(now);
        self.reflects.push_back(now);
        true
    }

    /// Connections pending now: (unvalidated, validated).
    pub fn pending(&self) -> (usize, usize) {
        (self.unvalidated, self.validated)
    }
}

fn prune(q: &mut VecDeque<Instant>, now: Instant) {
    while q.front().is_some_and(|t| now.saturating_duration_since(*t) >= REFLECT_WINDOW) {
        q.pop_front();
    }
}

/// Gives a slot back when the accept ends, however it ends.
struct SlotGuard {
    budget: Arc<Mutex<AcceptBudget>>,
    ip: IpAddr,
    slot: Option<Slot>,
}

impl SlotGuard {
    fn release(&mut self) {
        if let Some(slot) = self.slot.take() {
            if let Ok(mut b) = self.budget.lock() {
                b.release(self.ip, slot);
            }
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// Accepts connections on `endpoint` under `limits` until the endpoint closes. Each call stream is
/// sent on `calls` (wrapped by `wrap`); reflect requests are answered here.
pub async fn accept_calls<T: Send + 'static>(
    endpoint: quinn::Endpoint,
    limits: AcceptLimits,
    calls: mpsc::Sender<T>,
    wrap: fn(CallId, CallStream) -> T,
) {
    let budget = Arc::new(Mutex::new(AcceptBudget::new(limits)));
    while let Some(incoming) = endpoint.accept().await {
        let ip = incoming.remote_address().ip();
        let admission = match budget.lock() {
            Ok(mut b) => b.admit(ip, incoming.remote_address_validated(), incoming.may_retry()),
            Err(_) => Admission::Refuse,
        };
        let slot = match admission {
            Admission::Accept(slot) => slot,
            Admission::Retry => {
                if incoming.retry().is_err() {
                    tracing::debug!(%ip, "could not send a QUIC Retry");
                }
                continue;
            }
            Admission::Refuse => {
                incoming.refuse();
                continue;
            }
        };
        let mut guard = SlotGuard { budget: budget.clone(), ip, slot: Some(slot) };
        let (calls, budget) = (calls.clone(), budget.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(ACCEPT_TIMEOUT, accept_request(incoming)).await {
                Ok(Ok((StreamRequest::Call(call_id), stream))) => {
                    guard.release();
                    let _ = calls.send(wrap(call_id, stream)).await;
                }
                Ok(Ok((StreamRequest::Reflect(nonce), stream))) => {
                    // A reflect request gives its call slot back and draws on its own budget.
                    guard.release();
                    let allowed = budget.lock().is_ok_and(|mut b| b.allow_reflect(ip, Instant::now()));
                    if allowed {
                        super::reflect::answer(stream.conn, stream.send, nonce).await;
                    } else {
                        stream.conn.close(CLOSE_UNWANTED.into(), b"too many reflect requests");
                    }
                }
                Ok(Err(e)) => tracing::debug!(%ip, error = %e, "refused a QUIC connection"),
                // Dropping the future dropped the connection: its state is gone.
                Err(_) => tracing::debug!(%ip, "a QUIC connection did not name a call in time"),
            }
        });
    }
}

/// Completes the QUIC handshake of `incoming` and reads its first stream's header. A connection
/// whose header is bad is closed.
pub async fn accept_request(incoming: quinn::Incoming) -> Result<(StreamRequest, CallStream), ChannelError> {
    let conn = incoming.await.map_err(ChannelError::net)?;
    let (send, mut recv) = conn.accept_bi().await.map_err(ChannelError::net)?;
    match read_request(&mut recv).await {
        Ok(request) => Ok((request, CallStream { conn, send, recv })),
        Err(e) => {
            conn.close(CLOSE_UNWANTED.into(), b"bad call stream");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(11, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(11, 0, 0, 2));

    #[test]
    fn unvalidated_floods_are_sent_to_retry_and_never_take_validated_slots() {
        let mut b = AcceptBudget::new(AcceptLimits::default());
        for _ in 0..4 {
            assert_eq!(b.admit(A, false, true), Admission::Accept(Slot::Unvalidated));
        }
        for _ in 0..1000 {
            assert_eq!(b.admit(A, false, true), Admission::Retry);
        }
        assert_eq!(b.admit(A, false, false), Admission::Refuse, "a Retry that came back unvalidated");
        // A real caller proves its address with the Retry token and gets in.
        assert_eq!(b.admit(B, true, false), Admission::Accept(Slot::Validated));
        assert_eq!(b.pending(), (4, 1));
        b.release(A, Slot::Unvalidated);
        assert_eq!(b.admit(A, false, true), Admission::Accept(Slot::Unvalidated), "a freed slot is reused");
    }

    #[test]
    fn validated_slots_are_capped_per_ip_and_in_total() {
        let limits = AcceptLimits::default();
        let mut b = AcceptBudget::new(limits);
        for _ in 0..limits.validated_per_ip {
            assert!(matches!(b.admit(A, true, false), Admission::Accept(_)));
        }
        assert_eq!(b.admit(A, true, false), Admission::Refuse, "one IP holds at most its share");
        let mut n = limits.validated_per_ip;
        let mut ip = 0u32;
        while n < limits.validated {
            ip += 1;
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0100 + ip));
            if matches!(b.admit(addr, true, false), Admission::Accept(_)) {
                n += 1;
            }
        }
        assert_eq!(b.admit(B, true, false), Admission::Refuse, "the total is capped");
        b.release(A, Slot::Validated);
        assert_eq!(b.admit(B, true, false), Admission::Accept(Slot::Validated));
    }

    #[test]
    fn reflect_requests_have_their_own_budget_per_ip_and_in_total() {
        let limits = AcceptLimits { reflects: 8, reflects_per_ip: 2, ..AcceptLimits::default() };
        let mut b = AcceptBudget::new(limits);
        let t0 = Instant::now();
        assert!(b.allow_reflect(A, t0));
        assert!(b.allow_reflect(A, t0));
        assert!(!b.allow_reflect(A, t0), "third from one IP in the window");
        for i in 0..6u32 {
            assert!(b.allow_reflect(IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0200 + i)), t0));
        }
        assert!(!b.allow_reflect(B, t0), "the total is spent");
        assert!(b.allow_reflect(A, t0 + REFLECT_WINDOW), "the window slides");
        // Reflects never touch the call slots.
        assert_eq!(b.pending(), (0, 0));
    }
}
