//! A TCP proxy in front of a git server that breaks chosen requests the way networks do: it cuts the
//! connection or stops forwarding (a stall) part-way through the answer to a request whose first bytes
//! contain a marker (`git-upload-pack`: a fetch; `git-receive-pack`: a push), or resets every new
//! connection. Between faults it forwards bytes unchanged.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Accept, then close at once (a server that refuses mid-handshake).
    Reset,
    /// On a request containing `marker`, forward `after` bytes of the answer, then close both sides.
    Cut { marker: &'static str, after: usize },
    /// On a request containing `marker`, forward `after` bytes of the answer, then forward nothing
    /// more and keep the connection open.
    Stall { marker: &'static str, after: usize },
}

pub struct TcpFault {
    pub address: String,
    fault: Arc<Mutex<Fault>>,
    /// Connections on which the fault struck.
    pub struck: Arc<Mutex<usize>>,
    server: tokio::task::JoinHandle<()>,
}

impl TcpFault {
    /// Listens on a free loopback port in front of `upstream` (`127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> TcpFault {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let struck = Arc::new(Mutex::new(0));
        let upstream = upstream.to_string();
        let server = {
            let (fault, struck) = (fault.clone(), struck.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let current = fault.lock().unwrap().clone();
                    let (upstream, struck) = (upstream.clone(), struck.clone());
                    tokio::spawn(async move {
                        if current == Fault::Reset {
                            *struck.lock().unwrap() += 1;
                            drop(client);
                            return;
                        }
                        if let Ok(server) = TcpStream::connect(&upstream).await {
                            relay(client, server, current, struck).await;
                        }
                    });
                }
            })
        };
        TcpFault {
            address,
            fault,
            struck,
            server,
        }
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    pub fn struck(&self) -> usize {
        *self.struck.lock().unwrap()
    }
}

impl Drop for TcpFault {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Copies both ways; once the client's bytes contain the fault's marker, the answer is cut or stalled
/// after the fault's byte count.
async fn relay(client: TcpStream, server: TcpStream, fault: Fault, struck: Arc<Mutex<usize>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let armed = Arc::new(Mutex::new(false));
    let marker = match &fault {
        Fault::Cut { marker, .. } | Fault::Stall { marker, .. } => Some(*marker),
        _ => None,
    };
    let upstream = {
        let armed = armed.clone();
        async move {
            let mut buffer = vec![0u8; 16 * 1024];
            let mut seen = Vec::new();
            while let Ok(n) = client_read.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                if let Some(marker) = marker
                    && !*armed.lock().unwrap()
                {
                    seen.extend_from_slice(&buffer[..n]);
                    if seen.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                        *armed.lock().unwrap() = true;
                    }
                    if seen.len() > 64 * 1024 {
                        seen.drain(..seen.len() - 1024);
                    }
                }
                if server_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
            let _ = server_write.shutdown().await;
        }
    };
    let downstream = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        let mut sent_armed = 0usize;
        while let Ok(n) = server_read.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            let mut chunk = &buffer[..n];
            if *armed.lock().unwrap() {
                let after = match &fault {
                    Fault::Cut { after, .. } | Fault::Stall { after, .. } => *after,
                    _ => usize::MAX,
                };
                if sent_armed + chunk.len() >= after {
                    chunk = &chunk[..after.saturating_sub(sent_armed)];
                    let _ = client_write.write_all(chunk).await;
                    *struck.lock().unwrap() += 1;
                    if matches!(fault, Fault::Stall { .. }) {
                        // Hold the connection open, silent, until the client gives up.
                        std::future::pending::<()>().await;
                    }
                    return;
                }
                sent_armed += chunk.len();
            }
            if client_write.write_all(chunk).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
