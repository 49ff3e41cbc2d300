//! Prints what happens on a running hail daemon (contacts added, renamed, blocked, removed; the
//! node's name changing) as JSON lines, using the same `control::Client` library as the CLI.
//!
//! Usage: `cargo run --example watch -- /path/to/home` (default: `$HAIL_HOME`, else the platform
//! data folder). Stop with Ctrl-C.

use hail::control::Client;
use hail::home::Home;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let home = Home::resolve(std::env::args_os().nth(1).map(Into::into))?;
    let mut client = Client::connect(&home.socket_path()).await?;
    let me = client.identity().await?;
    eprintln!("watching {} ({}) — Ctrl-C to stop", me.name, me.peer_id);
    client.subscribe().await?;
    loop {
        let event = client.next_event().await?;
        println!("{event}");
    }
}
