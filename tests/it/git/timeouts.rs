//! Network timeouts, through the binary (only `main` sets libgit2's process-global timeouts): a git
//! server that accepts the connection and then never answers ends the cycle with a timeout error, over
//! HTTP and over SSH, instead of pinning a thread forever.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::*;

/// Accepts every connection on a loopback port and never sends a byte; connections stay open until
/// the server is dropped.
struct StallingServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StallingServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    held.push(stream);
                }
            }
        });
        StallingServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StallingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Far above libgit2's read timeout plus the connect timeout (`tagwatch::git`): reaching it means the
/// binary hung, and the test fails instead of hanging with it.
const HUNG: Duration = Duration::from_secs(300);

#[test]
fn a_git_server_that_accepts_and_stalls_fails_with_a_timeout_instead_of_hanging() {
    let http = StallingServer::start();
    let ssh = StallingServer::start();
    let root = tempfile::tempdir().unwrap();
    let key = root.path().join("key");
    keygen(&key, "unused");
    let known_hosts = root.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    std::fs::create_dir_all(root.path().join("policies")).unwrap();
    std::fs::write(
        root.path().join("policies/app.yaml"),
        "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: app }\nspec:\n  image: 127.0.0.1:1/app\n  semver: { range: \"^1\" }\n",
    )
    .unwrap();
    let write_back =
        "writeBack: { mode: push, author: { name: tagwatch, email: tagwatch@localhost } }";
    let config = root.path().join("tagwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "repositories:\n\
             \x20 - name: stalled-http\n\
             \x20   url: http://127.0.0.1:{http}/git/config.git\n\
             \x20   {write_back}\n\
             \x20 - name: stalled-ssh\n\
             \x20   url: ssh://git@127.0.0.1:{ssh}/srv/config.git\n\
             \x20   auth: {{ sshKeyFile: {key}, knownHostsFile: {known_hosts} }}\n\
             \x20   {write_back}\n\
             policies: [policies/]\n\
             daemon: {{ stateDir: state }}\n",
            http = http.port,
            ssh = ssh.port,
            key = key.display(),
            known_hosts = known_hosts.display(),
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .arg("--config")
        .arg(&config)
        .arg("plan")
        .env_clear()
        .env("HOME", root.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stderr = String::new();
        let _ = stderr_pipe.read_to_string(&mut stderr);
        let _ = done.send((child.wait().unwrap(), stderr));
    });
    let Ok((status, stderr)) = finished.recv_timeout(HUNG) else {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        panic!("`tagwatch plan` still hangs on a stalled git server after {HUNG:?}");
    };

    assert!(!status.success(), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    for (name, port) in [("stalled-http", http.port), ("stalled-ssh", ssh.port)] {
        let line = lines
            .iter()
            .find(|line| line.contains(name))
            .unwrap_or_else(|| panic!("no error for {name}: {stderr}"));
        assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
        assert!(
            line.to_ascii_lowercase().contains("timed out"),
            "a timeout, not another failure: {line}"
        );
    }
}
