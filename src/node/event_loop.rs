//! The loop that owns the node's state and answers [`Node`](super::Node) requests.

use std::ops::ControlFlow;
use std::time::{Instant, SystemTime};

use tokio::sync::{broadcast, mpsc};

use super::{
    ContactRef, IdentityInfo, NodeConfig, NodeError, NodeEvent, Request, StatusInfo, unix_ms,
};
use crate::identity::Card;
use crate::name::Name;
use crate::store::{Contact, Database, Store};

/// Settings key of the node's display name.
const DISPLAY_NAME_SETTING: &str = "display_name";

/// Owns the identity and the database; run it with [`NodeLoop::run`].
#[derive(Debug)]
pub struct NodeLoop<S: Store> {
    config: NodeConfig,
    db: Database<S>,
    requests: mpsc::Receiver<Request>,
    events: broadcast::Sender<NodeEvent>,
    started: Instant,
}

impl<S: Store> NodeLoop<S> {
    pub(super) fn new(
        config: NodeConfig,
        db: Database<S>,
        requests: mpsc::Receiver<Request>,
        events: broadcast::Sender<NodeEvent>,
    ) -> Self {
        NodeLoop {
            config,
            db,
            requests,
            events,
            started: Instant::now(),
        }
    }

    /// Handles requests until [`Node::shutdown`](super::Node::shutdown) or until every handle is gone.
    pub async fn run(mut self) {
        while let Some(request) = self.requests.recv().await {
            if self.handle(request).is_break() {
                tracing::debug!("node loop stopped");
                return;
            }
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
            Request::AddContact {
                name,
                target,
                reply,
            } => {
                let _ = reply.send(self.add_contact(name, target));
            }
            Request::RenameContact {
                name,
                new_name,
                reply,
            } => {
                let result = self
                    .db
                    .rename_contact(&name, &new_name)
                    .map_err(NodeError::from);
                if let Ok(contact) = &result {
                    if name != new_name {
                        self.emit(NodeEvent::ContactRenamed {
                            old_name: name,
                            contact: contact.clone(),
                        });
                    }
                }
                let _ = reply.send(result);
            }
            Request::SetBlocked {
                name,
                blocked,
                reply,
            } => {
                let result = self
                    .db
                    .update_contact(&name, |c| c.blocked = blocked)
                    .map_err(NodeError::from);
                if let Ok(contact) = &result {
                    self.emit(NodeEvent::ContactChanged {
                        contact: contact.clone(),
                    });
                }
                let _ = reply.send(result);
            }
            Request::RemoveContact { name, reply } => {
                let result = self.db.remove_contact(&name).map_err(NodeError::from);
                if let Ok(contact) = &result {
                    self.emit(NodeEvent::ContactRemoved {
                        contact: contact.clone(),
                    });
                }
                let _ = reply.send(result);
            }
            Request::Shutdown { reply } => {
                let _ = reply.send(());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn emit(&self, event: NodeEvent) {
        // No subscribers is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }

    fn display_name(&self) -> Result<Name, NodeError> {
        if let Some(name) = self.db.setting::<Name>(DISPLAY_NAME_SETTING)? {
            return Ok(name);
        }
        let fallback = std::env::var("USER")
            .ok()
            .and_then(|u| Name::parse(&u).ok());
        Ok(fallback.unwrap_or_else(|| Name::parse("hail user").expect("a valid name")))
    }

    fn identity(&mut self, set_name: Option<Name>) -> Result<IdentityInfo, NodeError> {
        if let Some(name) = &set_name {
            self.db.set_setting(DISPLAY_NAME_SETTING, name)?;
        }
        let info = self.identity_info()?;
        if set_name.is_some() {
            self.emit(NodeEvent::IdentityChanged {
                identity: info.clone(),
            });
        }
        Ok(info)
    }

    fn identity_info(&self) -> Result<IdentityInfo, NodeError> {
        let card = Card {
            peer_id: self.config.identity.peer_id(),
            name: self.display_name()?,
            addresses: vec![],
        };
        Ok(IdentityInfo {
            peer_id: card.peer_id,
            card: card.to_string(),
            name: card.name,
            addresses: card.addresses.iter().map(ToString::to_string).collect(),
        })
    }

    fn status(&self) -> Result<StatusInfo, NodeError> {
        let contacts = self.db.contacts()?;
        Ok(StatusInfo {
            peer_id: self.config.identity.peer_id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            home: self.config.home.clone(),
            uptime_secs: self.started.elapsed().as_secs(),
            blocked: contacts.iter().filter(|c| c.blocked).count(),
            contacts: contacts.len(),
        })
    }

    fn add_contact(&mut self, name: Name, target: ContactRef) -> Result<Contact, NodeError> {
        let now = unix_ms(SystemTime::now());
        let contact = match target {
            ContactRef::PeerId(peer_id) => Contact::new(name, peer_id, now),
            ContactRef::Card(card) => {
                let mut c = Contact::new(name, card.peer_id, now);
                c.display_name = Some(card.name);
                c.last_seen_addresses = card.addresses;
                c
            }
        };
        if contact.peer_id == self.config.identity.peer_id() {
            return Err(NodeError::SelfContact);
        }
        self.db.add_contact(&contact)?;
        self.emit(NodeEvent::ContactAdded {
            contact: contact.clone(),
        });
        Ok(contact)
    }
}
