//! The loop that owns the node's state and answers [`Node`](super::Node) requests.

use std::ops::ControlFlow;
use std::time::{Instant, SystemTime};

use tokio::sync::{broadcast, mpsc};

use super::calls::{PHONE_EVENTS, Phone, PhoneEvent};
use super::{ContactRef, FindOutcome, IdentityInfo, NodeConfig, NodeError, NodeEvent, Request, StatusInfo, unix_ms};
use crate::discovery::{Discovery, DiscoveryEvent, FoundPeer};
use crate::identity::{Card, parse_peer_id};
use crate::name::Name;
use crate::store::{Contact, Database, Store};

/// A contact's last seen addresses are rewritten at most this often when nothing changed.
const LAST_SEEN_REFRESH_MS: u64 = 5 * 60 * 1000;
/// Most last seen addresses kept per contact.
const MAX_LAST_SEEN: usize = 8;
/// Longest a stopping node waits for its live call to end (the call's own linger is 2 s).
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Settings key of the node's display name.
const DISPLAY_NAME_SETTING: &str = "display_name";

/// Owns the identity and the database; run it with [`NodeLoop::run`].
#[derive(Debug)]
pub struct NodeLoop<S: Store> {
    pub(super) config: NodeConfig,
    pub(super) db: Database<S>,
    pub(super) discovery: Discovery,
    pub(super) phone: Phone,
    phone_events: mpsc::Receiver<PhoneEvent>,
    requests: mpsc::Receiver<Request>,
    events: broadcast::Sender<NodeEvent>,
    started: Instant,
}

impl<S: Store> NodeLoop<S> {
    pub(super) fn new(
        config: NodeConfig,
        db: Database<S>,
        discovery: Discovery,
        endpoint: quinn::Endpoint,
        requests: mpsc::Receiver<Request>,
        events: broadcast::Sender<NodeEvent>,
        view: crate::media::view::ViewFeed,
    ) -> Self {
        let (phone_tx, phone_events) = mpsc::channel(PHONE_EVENTS);
        let phone = Phone::new(endpoint, config.calls.clone(), config.identity.clone(), phone_tx, view);
        NodeLoop { config, db, discovery, phone, phone_events, requests, events, started: Instant::now() }
    }

    /// Handles requests, network events and timers until [`Node::shutdown`](super::Node::shutdown)
    /// or until every handle is gone.
    pub async fn run(mut self) {
        match self.db.contacts() {
            Ok(contacts) => {
                let hints: Vec<_> = contacts.into_iter().map(|c| (c.peer_id, c.last_seen_addresses)).collect();
                self.discovery.add_hints(&hints);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read contacts for DHT hints"),
        }
        self.phone.start();
        // A public call endpoint answers others' reflect requests; tell peers where it is.
        let public_calls = match &self.phone.settings.advertise {
            Some(list) => list.first().copied(),
            None => self.phone.endpoint.local_addr().ok(),
        };
        self.discovery.set_calls_address(public_calls);
        loop {
            let deadline = self.discovery.poll_timeout();
            let call_deadline = self.phone.poll_timeout();
            tokio::select! {
                request = self.requests.recv() => match request {
                    Some(request) => {
                        if self.handle(request).is_break() {
                            tracing::debug!("node loop stopped");
                            break;
                        }
                    }
                    None => break,
                },
                event = self.discovery.next_event() => self.discovery.handle_event(event, Instant::now()),
                Some(event) = self.phone_events.recv() => self.on_phone_event(event),
                () = sleep_until(deadline) => self.discovery.on_timeout(Instant::now()),
                () = sleep_until(call_deadline) => self.on_call_timeout(Instant::now()),
            }
            for event in self.discovery.drain_events() {
                self.on_discovery(event);
            }
        }
        self.hang_up_on_the_way_out().await;
        self.phone.stop().await;
    }

    /// On the way out: hangs up the live call and keeps serving its link and timers until the peer
    /// acknowledges (or the call's linger runs out, [`STOP_LIMIT`] at most), so both sides see a
    /// hang-up rather than a lost connection, and the call is in the history before the node stops.
    async fn hang_up_on_the_way_out(&mut self) {
        if self.phone.calls.is_empty() && !self.phone.in_group() {
            return;
        }
        let _ = self.call_action(crate::call::UserAction::Hangup);
        if self.phone.in_group() {
            let _ = self.leave_group();
        }
        let limit = Instant::now() + STOP_LIMIT;
        while !self.phone.calls.is_empty() && Instant::now() < limit {
            let deadline = self.phone.poll_timeout().map_or(limit, |d| d.min(limit));
            tokio::select! {
                Some(event) = self.phone_events.recv() => self.on_phone_event(event),
                () = sleep_until(Some(deadline)) => self.on_call_timeout(Instant::now()),
            }
        }
    }

    fn on_discovery(&mut self, event: DiscoveryEvent) {
        let (peer, addresses, force) = match event {
            DiscoveryEvent::Invite(invite) => return self.on_invite(invite),
            DiscoveryEvent::Found(FoundPeer { peer_id, addresses, .. }) => (peer_id, addresses, true),
            DiscoveryEvent::SeenOnLan { peer_id, addresses } => (peer_id, addresses, false),
            DiscoveryEvent::Reflector { peer_id, address } => return self.phone.learn_reflexive(peer_id, address),
            DiscoveryEvent::Reachability { private } => {
                if !private {
                    // Publicly reachable: a reflexive candidate would only repeat (or contradict)
                    // our host candidates.
                    self.phone.forget_reflexive();
                }
                return;
            }
        };
        let Ok(Some(contact)) = self.db.contact_by_peer(&peer) else { return };
        let now = unix_ms(SystemTime::now());
        let mut addresses = addresses;
        addresses.truncate(MAX_LAST_SEEN);
        let stale = contact.last_seen_at_ms.is_none_or(|t| now.saturating_sub(t) > LAST_SEEN_REFRESH_MS);
        if !(force || stale || contact.last_seen_addresses != addresses) {
            return;
        }
        let result = self.db.update_contact(&contact.name, |c| c.seen(addresses, now));
        match result {
            Ok(contact) => self.emit(NodeEvent::ContactChanged { contact }),
            Err(e) => tracing::warn!(error = %e, "cannot record where a contact was seen"),
        }
    }

    fn handle(&mut self, request: Request) -> ControlFlow<()> {
        match request {
            Request::Identity { set_name, reply } => {
                let _ = reply.send(self.identity(set_name));
            }
            Request::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Request::ListContacts { reply } => {
                let _ = reply.send(self.db.contacts().map_err(NodeError::from));
            }
            Request::AddContact { name, target, reply } => {
                let _ = reply.send(self.add_contact(name, target));
            }
            Request::RenameContact { name, new_name, reply } => {
                let result = self.db.rename_contact(&name, &new_name).map_err(NodeError::from);
                if let Ok(contact) = &result {
                    if name != new_name {
                        self.emit(NodeEvent::ContactRenamed { old_name: name, contact: contact.clone() });
                    }
                }
                let _ = reply.send(result);
            }
            Request::SetBlocked { name, blocked, reply } => {
                let result = self.db.update_contact(&name, |c| c.set_blocked(blocked)).map_err(NodeError::from);
                if let Ok(contact) = &result {
                    self.emit(NodeEvent::ContactChanged { contact: contact.clone() });
                }
                let _ = reply.send(result);
            }
            Request::RemoveContact { name, reply } => {
                let result = self.db.remove_contact(&name).map_err(NodeError::from);
                if let Ok(contact) = &result {
                    self.emit(NodeEvent::ContactRemoved { contact: contact.clone() });
                }
                let _ = reply.send(result);
            }
            Request::Peers { reply } => {
                let _ = reply.send(self.peers());
            }
            Request::Find { who, reply } => self.find(who, reply),
            Request::Bootstrap { peers, reply } => {
                self.discovery.add_bootstrap(&peers);
                let _ = reply.send(Ok(self.discovery.status()));
            }
            Request::Call { who, video, audio, reply } => self.place_call(who, video, audio, reply),
            Request::GroupCall { who, video, audio, reply } => {
                let _ = reply.send(self.start_group(who, video, audio));
            }
            Request::GroupAdd { who, reply } => {
                let _ = reply.send(self.add_to_group(who));
            }
            Request::GroupLeave { reply } => {
                let _ = reply.send(self.leave_group());
            }
            Request::Hangup { reply } => {
                let result = match self.call_action(crate::call::UserAction::Hangup) {
                    Err(NodeError::NoCall) if self.phone.in_group() => self.leave_group().map(|g| super::Hangup::Group(Box::new(g))),
                    other => other.map(|c| super::Hangup::Call(Box::new(c))),
                };
                let _ = reply.send(result);
            }
            Request::Answer { audio, reply } => {
                let _ = reply.send(self.answer(audio));
            }
            Request::Video { on, reply } => {
                let _ = reply.send(self.set_video(on));
            }
            Request::Mute { muted, reply } => {
                let _ = reply.send(self.set_muted(muted));
            }
            Request::CallAction { action, reply } => {
                let _ = reply.send(self.call_action(action));
            }
            Request::SasConfirm { call_id, emoji, reply } => {
                let _ = reply.send(self.confirm_sas(&call_id, &emoji));
            }
            Request::Verify { name, confirm, reply } => {
                let _ = reply.send(self.verify_contact(&name, confirm));
            }
            Request::History { limit, reply } => {
                let _ = reply.send(
                    self.db
                        .calls(limit)
                        .map(|mut c| {
                            c.reverse();
                            c
                        })
                        .map_err(NodeError::from),
                );
            }
            Request::Shutdown { reply } => {
                let _ = reply.send(());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn peers(&mut self) -> Result<Vec<crate::discovery::VisiblePeer>, NodeError> {
        let contacts = self.db.contacts()?;
        let name = |p: &crate::discovery::VisiblePeer| contacts.iter().find(|c| c.peer_id == p.peer_id).map(|c| c.name.clone());
        Ok(self.discovery.visible_peers().into_iter().map(|p| { let n = name(&p); p.with_contact(n) }).collect())
    }

    fn find(&mut self, who: String, reply: super::Reply<FindOutcome>) {
        let by_name = Name::parse(&who).ok().map(|n| self.db.contact(&n)).transpose();
        let target = match by_name {
            Err(e) => Err(NodeError::from(e)),
            Ok(Some(Some(contact))) => Ok((contact.peer_id, Some(contact.name))),
            Ok(_) => match parse_peer_id(&who) {
                Ok(peer) => {
                    let name = self.db.contact_by_peer(&peer).ok().flatten().map(|c| c.name);
                    Ok((peer, name))
                }
                Err(_) => Err(NodeError::UnknownPeer(who.clone())),
            },
        };
        let (peer, contact) = match target {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.discovery.find(peer, Instant::now(), tx);
        // The answer comes from the network later; relay it without holding up the loop.
        tokio::spawn(async move {
            let result = match rx.await {
                Ok(Ok(found)) => Ok(FindOutcome { contact, found }),
                Ok(Err(error)) => Err(NodeError::Find { who, error }),
                Err(_) => Err(NodeError::Stopped),
            };
            let _ = reply.send(result);
        });
    }

    fn verify_contact(&mut self, name: &Name, confirm: bool) -> Result<super::SafetyNumber, NodeError> {
        let contact = self.db.contact(name)?.ok_or_else(|| crate::store::StoreError::NoSuchContact(name.clone()))?;
        let number = crate::crypto::sas::safety_number(&self.config.identity.peer_id(), &contact.peer_id);
        let contact = if confirm && contact.verification == crate::store::Verification::Unverified {
            let c = self.db.update_contact(name, |c| c.verify(crate::store::Verification::SafetyNumber))?;
            self.emit(NodeEvent::ContactChanged { contact: c.clone() });
            c
        } else {
            contact
        };
        Ok(super::SafetyNumber {
            name: contact.name,
            peer_id: contact.peer_id,
            safety_number: number,
            verification: contact.verification,
        })
    }

    pub(super) fn emit(&self, event: NodeEvent) {
        // No subscribers is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }

    fn display_name(&self) -> Result<Name, NodeError> {
        if let Some(name) = self.db.setting::<Name>(DISPLAY_NAME_SETTING)? {
            return Ok(name);
        }
        let fallback = std::env::var("USER").ok().and_then(|u| Name::parse(&u).ok());
        Ok(fallback.unwrap_or_else(|| Name::parse("hail user").expect("a valid name")))
    }

    fn identity(&mut self, set_name: Option<Name>) -> Result<IdentityInfo, NodeError> {
        if let Some(name) = &set_name {
            self.db.set_setting(DISPLAY_NAME_SETTING, name)?;
        }
        let info = self.identity_info()?;
        if set_name.is_some() {
            self.emit(NodeEvent::IdentityChanged { identity: info.clone() });
        }
        Ok(info)
    }

    fn identity_info(&self) -> Result<IdentityInfo, NodeError> {
        let card = Card {
            peer_id: self.config.identity.peer_id(),
            name: self.display_name()?,
            addresses: self.discovery.advertised_addresses(),
        };
        Ok(IdentityInfo {
            peer_id: card.peer_id,
            card: card.to_string(),
            name: card.name,
            addresses: card.addresses.iter().map(ToString::to_string).collect(),
        })
    }

    fn status(&mut self) -> Result<StatusInfo, NodeError> {
        let contacts = self.db.contacts()?;
        Ok(StatusInfo {
            peer_id: self.config.identity.peer_id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            home: self.config.home.clone(),
            uptime_secs: self.started.elapsed().as_secs(),
            blocked: contacts.iter().filter(|c| c.blocked).count(),
            contacts: contacts.len(),
            network: self.discovery.status(),
            call: self.phone.info(),
            group: self.phone.group_info(&contacts),
            calls_address: self.phone.endpoint.local_addr().ok().map(|a| a.to_string()),
            calls_reflexive: self.phone.reflexive.map(|a| a.to_string()),
        })
    }

    fn add_contact(&mut self, name: Name, target: ContactRef) -> Result<Contact, NodeError> {
        let now = unix_ms(SystemTime::now());
        let contact = match target {
            ContactRef::PeerId(peer_id) => Contact::new(name, peer_id, now),
            ContactRef::Card(card) => Contact::new(name, card.peer_id, now).with_card(card.name, card.addresses),
        };
        if contact.peer_id == self.config.identity.peer_id() {
            return Err(NodeError::SelfContact);
        }
        self.db.add_contact(&contact)?;
        if !contact.last_seen_addresses.is_empty() {
            self.discovery.add_hints(&[(contact.peer_id, contact.last_seen_addresses.clone())]);
        }
        self.emit(NodeEvent::ContactAdded { contact: contact.clone() });
        Ok(contact)
    }
}
