//! A real registry (Debian's `docker-registry`, CNCF distribution 2.8.2) on a free loopback port, with
//! a generated config: plain HTTP, HTTPS with a CA the test generates, htpasswd basic auth, or
//! `auth: token` backed by [`TokenIssuer`]. Stopped (killed) on drop; its data lives in a temp dir.
//! When its port was taken before it could bind it, it is started again on another; it counts as ready
//! only once `/v2/` answers with its own identity header. Start it before pausing test time.
//!
//! Know the server: 2.8.2 ignores `n`/`last` on `tags/list`, never sends `Link`, and lists tags in
//! storage order. Pagination is exercised through `support::proxy`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use tagwatch::registry::{PasswordSource, RegistryAuthSettings, RegistrySettings};

use super::ports::free_port;
use super::seed::{SeedAuth, Seeder};
use super::token_issuer::TokenIssuer;

const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
/// How long a registry may take to answer `/v2/` after start (it is usually ready within 100 ms).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports tried before giving up: a port can be taken between `free_port` and the registry's bind.
const START_ATTEMPTS: usize = 5;
/// A response header every answer of our registry carries (`http.headers`) with a value unique to it:
/// readiness is only ever concluded from our own registry, not from whatever took its port.
const IDENTITY_HEADER: &str = "X-Tagwatch-Test-Registry";

pub const USER: &str = "tester";
pub const PASSWORD: &str = "correct-horse-battery-staple-7f3a";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Auth {
    Anonymous,
    Htpasswd,
    /// `auth: token`; the issuer's tokens live `ttl_seconds`.
    Token {
        ttl_seconds: u64,
    },
}

pub struct Registry {
    /// `http(s)://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`, as image references name it.
    pub host: String,
    pub tls: bool,
    pub auth: Auth,
    /// The CA that signed the server certificate (TLS only).
    pub ca_file: Option<PathBuf>,
    pub token_issuer: Option<TokenIssuer>,
    child: Child,
    /// Config, data and logs; removed on drop.
    _dir: tempfile::TempDir,
}

impl Registry {
    pub async fn plain() -> Registry {
        Registry::start(false, Auth::Anonymous).await
    }

    pub async fn start(tls: bool, auth: Auth) -> Registry {
        Registry::start_with(tls, auth, "").await
    }

    /// A plain registry that sends its notifications (the CNCF distribution envelope) to `url` with
    /// `Authorization: Bearer <token>`, as `notifications.endpoints[]` configures it.
    pub async fn notifying(url: &str, token: &str) -> Registry {
        let notifications = format!(
            "notifications:\n  endpoints:\n    - name: tagwatch\n      url: {url}\n      headers:\n        Authorization: [\"Bearer {token}\"]\n      timeout: 2s\n      threshold: 3\n      backoff: 200ms\n"
        );
        Registry::start_with(false, Auth::Anonymous, &notifications).await
    }

    async fn start_with(tls: bool, auth: Auth, extra: &str) -> Registry {
        ensure_installed();
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let identity = format!(
            "{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().unwrap();
        // Everything but the listening address, which each attempt fills in.
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  cache:\n    blobdescriptor: inmemory\n  maintenance:\n    uploadpurging:\n      enabled: false\n",
            data = dir.path().join("data").display(),
        );
        config.push_str(extra);
        let mut http = format!(
            "http:\n  secret: tagwatch-test-secret\n  headers:\n    {IDENTITY_HEADER}: [\"{identity}\"]\n"
        );
        let mut ca_file = None;
        if tls {
            let (ca, cert, key) = write_tls(dir.path());
            http.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            ca_file = Some(ca);
        }
        let mut token_issuer = None;
        match auth {
            Auth::Anonymous => {}
            Auth::Htpasswd => {
                let path = dir.path().join("htpasswd");
                let output = Command::new("htpasswd")
                    .args(["-Bbn", USER, PASSWORD])
                    .output()
                    .expect("htpasswd (apache2-utils) is installed");
                assert!(output.status.success());
                std::fs::write(&path, output.stdout).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: tagwatch-test\n    path: {}\n",
                    path.display()
                ));
            }
            Auth::Token { ttl_seconds } => {
                let issuer = TokenIssuer::start(
                    &format!("registry-{identity}"),
                    &[(USER, PASSWORD)],
                    ttl_seconds,
                )
                .await;
                let bundle = dir.path().join("token-root.pem");
                std::fs::write(&bundle, &issuer.root_bundle_pem).unwrap();
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    issuer.realm,
                    issuer.service,
                    super::token_issuer::ISSUER,
                    bundle.display()
                ));
                token_issuer = Some(issuer);
            }
        }
        let config_path = dir.path().join("config.yml");
        let log = dir.path().join("registry.log");
        let http_client = http_client(ca_file.as_deref());
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            std::fs::write(&config_path, format!("{config}{http}  addr: {host}\n")).unwrap();
            let mut child = Command::new(REGISTRY_BINARY)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(dir.path().join("registry.out")).unwrap())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start docker-registry");
            let url = format!("{}://{host}", if tls { "https" } else { "http" });
            if wait_ready(&http_client, &url, &identity, &mut child, &log).await {
                return Registry {
                    url,
                    host,
                    tls,
                    auth,
                    ca_file,
                    token_issuer,
                    child,
                    _dir: dir,
                };
            }
            // The port was taken before the registry bound it: try another.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not start on any of {START_ATTEMPTS} ports: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// A seeder with push rights (basic credentials, or a minted push token for `repository`).
    pub fn seeder(&self, repository: &str) -> Seeder {
        let ca = self
            .ca_file
            .as_ref()
            .map(|path| std::fs::read(path).unwrap());
        let auth = match self.auth {
            Auth::Anonymous => SeedAuth::Anonymous,
            Auth::Htpasswd => SeedAuth::Basic {
                username: USER.into(),
                password: PASSWORD.into(),
            },
            Auth::Token { .. } => SeedAuth::Bearer(
                self.token_issuer
                    .as_ref()
                    .unwrap()
                    .mint(USER, &format!("repository:{repository}:pull,push")),
            ),
        };
        Seeder::new(&self.url, ca.as_deref(), auth)
    }

    /// Settings for tagwatch's client: TLS with the test CA, or `insecure` for plain HTTP; credentials
    /// from the environment variable `password_env` when the registry needs them.
    pub fn settings(&self, password_env: &str) -> RegistrySettings {
        let mut settings = RegistrySettings::anonymous(self.host.clone());
        settings.insecure = !self.tls;
        settings.ca_file = self.ca_file.clone();
        if self.auth != Auth::Anonymous {
            settings.auth = RegistryAuthSettings::Basic {
                username: USER.to_string(),
                password: PasswordSource::Env(password_env.to_string()),
            };
        }
        settings
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the registry at `url` answers `/v2/` as itself (its identity header); false when the
/// child exits first (its port was taken). Panics when it neither answers nor exits in time.
async fn wait_ready(
    http: &reqwest::Client,
    url: &str,
    identity: &str,
    child: &mut Child,
    log: &Path,
) -> bool {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(response) = http.get(format!("{url}/v2/")).send().await {
            let ours = response
                .headers()
                .get(IDENTITY_HEADER)
                .is_some_and(|value| value == identity);
            // 200 anonymous, 401 with auth: either way the registry is serving.
            if ours && matches!(response.status().as_u16(), 200 | 401) {
                return true;
            }
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "docker-registry did not become ready: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn http_client(ca_file: Option<&Path>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = ca_file {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap(),
        );
    }
    builder.build().unwrap()
}

/// Installs the Debian packages through the project's script when the registry is missing.
fn ensure_installed() {
    if Path::new(REGISTRY_BINARY).exists() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/install-deps.sh");
    let status = Command::new(script)
        .status()
        .expect("run tests/install-deps.sh");
    assert!(
        status.success() && Path::new(REGISTRY_BINARY).exists(),
        "docker-registry could not be installed"
    );
}

/// A CA and a server certificate for 127.0.0.1 / localhost signed by it; returns (ca, cert, key) paths.
fn write_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca_cert, ca_issuer) = generate_ca("tagwatch test CA");
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    server_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server_cert = server_params.signed_by(&server_key, &ca_issuer).unwrap();
    let paths = (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, server_cert.pem()).unwrap();
    std::fs::write(&paths.2, server_key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

/// A self-signed CA for test certificates: its certificate and an issuer that signs with its key.
pub fn generate_ca(common_name: &str) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    (ca_cert, Issuer::new(ca_params, ca_key))
}
