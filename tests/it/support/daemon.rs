//! `tagwatch daemon` as a child process on a free loopback port: started with a config, reached over
//! its HTTP server, signalled with real signals, killed (SIGKILL) on drop.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the daemon may take to serve `/healthz` after start.
const STARTUP: Duration = Duration::from_secs(30);

pub struct Daemon {
    pub address: String,
    child: Child,
    /// Every stderr line so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `tagwatch --config CONFIG daemon` with only `env` (plus HOME and PATH), listening on
    /// `address` (the config's `daemon.listen`).
    pub async fn start(config: &Path, address: &str, env: &[(&str, &str)]) -> Daemon {
        let home = config.parent().unwrap().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tagwatch"))
            .arg("--config")
            .arg(config)
            .arg("-v")
            .arg("daemon")
            .env_clear()
            .env("HOME", &home)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let daemon = Daemon {
            address: address.to_string(),
            child,
            log,
        };
        let started = Instant::now();
        loop {
            if daemon
                .get("/healthz")
                .await
                .is_some_and(|(status, _)| status == 200)
            {
                return daemon;
            }
            assert!(
                started.elapsed() < STARTUP,
                "the daemon did not serve /healthz: {:#?}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `GET path`: status and body, or `None` when nothing answers.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = client().get(self.url(path)).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    /// `POST path` with `headers` and `body`: the status.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> u16 {
        let mut request = client().post(self.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap().status().as_u16()
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&self) {
        self.until("/readyz to answer 200", async || {
            self.get("/readyz")
                .await
                .is_some_and(|(status, _)| status == 200)
        })
        .await;
    }

    /// Polls `check` until it holds; fails the test (with the daemon's log) after a generous bound.
    pub async fn until(&self, what: &str, check: impl AsyncFn() -> bool) {
        let started = Instant::now();
        loop {
            if check().await {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "waited for {what}; daemon log: {:#?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` (`HUP`, `TERM`, `INT`, `KILL`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (bounded).
    pub fn wait(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the daemon did not exit: {:#?}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether a log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log().iter().any(|line| line.contains(text))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A `daemon:` block for tests: listen on `address`, state in `state`, a long poll interval (events and
/// the first cycle drive the tests), and the given webhook lines.
pub fn daemon_block(address: &str, webhooks: &str) -> String {
    format!(
        "daemon:\n  listen: {address}\n  stateDir: state\n  interval: 1h\n  repositoryInterval: 1h\n  shutdownGrace: 10s\n  webhooks:\n{webhooks}"
    )
}
