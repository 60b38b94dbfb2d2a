//! Loopback ports for servers the tests start as child processes (registry, lighttpd, sshd).
//!
//! A port found free (bind :0, read it, release it) can be taken by anyone before the child binds it.
//! Inside this test binary that cannot be another test: a port is handed out at most once per process.
//! Outside it (another test binary, an outgoing connection's ephemeral port) it can, so every caller
//! that spawns a server retries with a new port when the server fails to bind.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

/// Ports handed out so far by this process.
static HANDED_OUT: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(Mutex::default);

/// A loopback port nothing listened on a moment ago and that no other caller in this process got.
pub fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("bind a loopback port");
        if handed_out.insert(port) {
            return port;
        }
    }
}
