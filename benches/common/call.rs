//! A call between two real daemons in this process, for the benches that measure one: start both,
//! make them contacts, alice calls bob (who answers) and the call is active.
//!
//! Included by a bench with `#[path = "common/call.rs"] mod call;`.

#![allow(dead_code)] // each bench uses part of it

use std::path::Path;
use std::time::Duration;

use hail::call::CallState;
use hail::home::Home;
use hail::node::{Daemon, DaemonOptions, NodeEvent};
use tokio::sync::broadcast;

/// Waits (20 s at most, then panics) for an event that `pred` accepts.
pub async fn until(events: &mut broadcast::Receiver<NodeEvent>, pred: impl Fn(&NodeEvent) -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(e) = events.recv().await
                && pred(&e)
            {
                return;
            }
        }
    })
    .await
    .expect("the call progressed within 20 s");
}

/// Starts alice and bob (homes under `dir`), makes them contacts, and has alice call bob (video)
/// until the call is active; bob's options must answer by themselves (`calls.auto_answer`).
pub async fn active_call(dir: &Path, alice: DaemonOptions, bob: DaemonOptions) -> (Daemon, Daemon) {
    let alice = Daemon::start(Home::new(dir.join("alice")), alice).await.unwrap();
    let bob = Daemon::start(Home::new(dir.join("bob")), bob).await.unwrap();
    call_until_active(&alice, &bob).await;
    (alice, bob)
}

/// Makes two started daemons contacts and has alice call bob (video) until the call is active;
/// bob's options must answer by themselves.
pub async fn call_until_active(alice: &Daemon, bob: &Daemon) {
    let (a, b) = (alice.node().clone(), bob.node().clone());
    let card_a = a.identity(Some("alice")).await.unwrap().card;
    let card_b = b.identity(Some("bob")).await.unwrap().card;
    a.add_contact("bob", &card_b).await.unwrap();
    b.add_contact("alice", &card_a).await.unwrap();
    let mut events = a.subscribe();
    a.call("bob", true).await.unwrap();
    until(&mut events, |e| matches!(e, NodeEvent::CallState { call } if call.state == CallState::Active)).await;
}
