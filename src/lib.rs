//! # hail
//!
//! A serverless, end-to-end-encrypted calling node. A user runs `hail daemon`; it keeps an identity
//! (an Ed25519 key whose libp2p PeerId is the node's name), an address book in sled, and a local control
//! socket that the `hail` CLI, scripts and embedding programs drive.
//!
//! ## Layers
//!
//! | layer | modules | does IO? |
//! |---|---|---|
//! | domain values | [`name`], [`identity`] (keys, contact cards), [`call_id`], [`wall_clock`], [`ip_scope`] | only [`Identity::load_or_create`](identity::Identity::load_or_create) |
//! | protocol cores (sans-IO) | [`crypto`] (Noise handshake, SAS, frame AEAD), [`call`] (the call state machine, signalling, invite budgets), [`group`] (a member of a group call: roster, group emoji, sender keys; not wired yet), [`media`]'s cores ([`MediaSession`](media::session::MediaSession), the jitter buffer, the video sender and receiver, lip sync, rate control) | no: fed `now` and bytes |
//! | the media port | [`media_link`]: [`MediaLink`](media_link::MediaLink), what a call's media needs from the link to its peer (datagrams, one-way streams, the path's numbers); transport implements it, media uses it, neither names the other | no |
//! | transport | [`transport`]: the QUIC endpoint, the accept budget, [`PeerLink`](transport::link::PeerLink) (candidates, handshake, control stream), [`QuicMediaPort`](transport::media_port::QuicMediaPort) (the media's share of the connection, handed out by [`PeerLink::media`](transport::link::PeerLink::media)) | sockets |
//! | discovery | [`discovery`]: libp2p mDNS + Kademlia, NAT traversal, signed peer records; [`relay`]: the media relay | the swarm |
//! | media IO | [`media::driver`]: [`CallMedia`](media::driver::CallMedia), one tokio task per call driving its session, the encode and decode threads, the GOP stream tasks; [`media`]'s devices, files and codecs | devices, codecs, threads |
//! | storage | [`store`]: a key-value [`Store`](store::Store) trait, sled and memory backends, the typed [`Database`](store::Database) | the backend |
//! | the node | [`node`]: the [`Node`](node::Node) handle and the [`NodeLoop`](node::NodeLoop) that owns all state; [`config`], [`home`] | through the layers below |
//! | local API | [`control`]: NDJSON protocol, unix-socket server, [`Client`](control::Client); [`peer_text`] | yes |
//! | binary | `src/main.rs`: the CLI | yes |
//!
//! Which layer may name which is fixed in `../shared/DESIGN.md` and checked by `tests/layering.rs`:
//! media never names transport, call or node (nor quinn: it has [`media_link`]); transport never
//! names call or media; discovery never names node or call; call never names discovery or relay;
//! crypto never names call; store never names node.
//!
//! Beyond those rules: the node does not know the control protocol exists (only `node::daemon`
//! starts the control server beside the loop), and the store does not know about nodes.
//!
//! ## The run-loop contract
//!
//! [`Node::new`](node::Node::new) returns `(Node, NodeLoop)`. The caller runs the loop
//! (`tokio::spawn(node_loop.run())`); `Node::new` spawns nothing. The running loop spawns tasks so it
//! never waits itself: short ones that bring an answer back, the call endpoint's accept loop, and
//! those of a live call (its link's driver, which `PeerLink::connect` returns for the loop to spawn,
//! and the media: `media::driver::CallMedia::start` spawns the call's media task, its stream tasks
//! and its encode and decode threads), which end with the call. Every request to the node goes
//! through a bounded channel and gets its answer on a oneshot, so the loop owns its state alone.
//! The protocol cores (the call's `CallSession`, the handshake, the media's `MediaSession` and its
//! jitter buffer, rate loop and lip sync) are sans-IO: fed `now` and bytes, drained of outputs until
//! they return their next deadline.
//!
//! ## Panics
//!
//! A panic is a bug. Bad input of every kind — a malformed control line, a damaged card, a corrupt
//! database, a garbage key file — is an error value with a message that says what to do next.
//!
//! ## Example: drive a running daemon
//!
//! ```no_run
//! # async fn demo() -> Result<(), hail::control::ClientError> {
//! let home = hail::home::Home::new("/tmp/alice");
//! let mut client = hail::control::Client::connect(&home.socket_path()).await?;
//! let me = client.identity().await?;
//! println!("share this card: {}", me.card);
//! client.add_contact("bob", "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo").await?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod call;
pub mod call_id;
pub mod config;
pub mod control;
pub mod crypto;
pub mod discovery;
pub mod group;
pub mod home;
pub mod identity;
pub mod ip_scope;
pub mod media;
pub mod media_link;
pub mod name;
pub mod peer_text;
pub mod relay;
pub mod node;
pub mod store;
pub mod transport;
pub mod wall_clock;
