//! Git over smart HTTP: bare repositories served by `git http-backend` as a lighttpd CGI, behind bcrypt
//! Basic auth (`htpasswd -B`), optionally over TLS with a CA generated per server. Also the small `git`
//! CLI helpers the git tests share (seeding repos, reading a bare repo): the tests check tagwatch's
//! libgit2 work with the real `git`, never with itself.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::ports::free_port;

/// The file every seeded repository holds, with the line tests bump.
pub const SEED_FILE: &str = "clusters/prod/app.yaml";
pub const SEED_CONTENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: 127.0.0.1:5000/seed/repo-0001:1.0.0 # tagwatch: seed-semver\n";

pub struct GitHttpServer {
    child: Child,
    directory: TempDir,
    port: u16,
    tls: bool,
}

impl GitHttpServer {
    /// Plain HTTP, Basic auth `username` / `password` (a token is a password with user
    /// `x-access-token`).
    pub fn start(username: &str, password: &str) -> Self {
        Self::start_with(username, password, false)
    }

    /// HTTPS with a fresh CA (see [`Self::ca_file`]).
    pub fn start_tls(username: &str, password: &str) -> Self {
        Self::start_with(username, password, true)
    }

    /// A server that answers every `/git/…` request with a redirect to the same path on `target`:
    /// an attempt to lure credentials to another host.
    pub fn start_redirecting_to(target: &GitHttpServer) -> Self {
        let directory = tempfile::tempdir().expect("temp dir");
        let root = directory.path();
        std::fs::create_dir_all(root.join("www")).unwrap();
        let target_base = target.url("").trim_end_matches(".git").to_string();
        Self::run_lighttpd(directory, false, |root, port| {
            format!(
                "server.modules = ( \"mod_redirect\" )\n\
                 server.document-root = \"{}/www\"\n\
                 server.bind = \"127.0.0.1\"\n\
                 server.port = {port}\n\
                 url.redirect = ( \"^/git/(.*)$\" => \"{target_base}$1\" )\n",
                root.display()
            )
        })
    }

    fn start_with(username: &str, password: &str, tls: bool) -> Self {
        let directory = tempfile::tempdir().expect("temp dir");
        let root = directory.path();
        for sub in ["repos", "www", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        run(Command::new("htpasswd")
            .arg("-Bbc")
            .arg(root.join("htpasswd"))
            .arg(username)
            .arg(password));
        if tls {
            write_tls_files(root);
        }
        let exec_path = output(Command::new("git").arg("--exec-path"));
        Self::run_lighttpd(directory, tls, |root, port| {
            lighttpd_config(root, port, exec_path.trim(), tls)
        })
    }

    /// Runs `lighttpd -D` on a free port with the config `config_for(root, port)` writes.
    fn run_lighttpd(
        directory: TempDir,
        tls: bool,
        config_for: impl Fn(&Path, u16) -> String,
    ) -> Self {
        let root = directory.path();
        let config = root.join("lighttpd.conf");
        let (child, port) = spawn_on_free_port(&root.join("lighttpd.out"), |port| {
            std::fs::write(&config, config_for(root, port)).unwrap();
            let mut command = Command::new("lighttpd");
            command.arg("-D").arg("-f").arg(&config);
            command
        });
        GitHttpServer {
            child,
            directory,
            port,
            tls,
        }
    }

    /// `http(s)://127.0.0.1:PORT/git/NAME.git`, without credentials.
    pub fn url(&self, name: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/git/{name}.git", self.port)
    }

    /// The CA that signed the server certificate (TLS servers only).
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.tls, "not a TLS server");
        self.directory.path().join("tls/ca.crt")
    }

    /// Lines of the server's access log that contain `needle` (lighttpd flushes the log about once a
    /// second: wait for a request known to have been made before counting others).
    pub fn logged_requests(&self, needle: &str) -> usize {
        std::fs::read_to_string(self.directory.path().join("lighttpd-access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// A new bare repository with one seed commit on `main`; returns its path.
    pub fn create_repo(&self, name: &str) -> PathBuf {
        seed_bare_repo_in(&self.directory.path().join("repos"), name)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lighttpd_config(root: &Path, port: u16, exec_path: &str, tls: bool) -> String {
    let root = root.display();
    let tls_module = if tls { ", \"mod_openssl\"" } else { "" };
    let tls_lines = if tls {
        format!("ssl.engine = \"enable\"\nssl.pemfile = \"{root}/tls/server.pem\"\n")
    } else {
        String::new()
    };
    // git http-backend enables receive-pack only with REMOTE_USER set, which mod_auth does.
    format!(
        r#"server.modules = ( "mod_alias", "mod_setenv", "mod_auth", "mod_authn_file", "mod_cgi", "mod_accesslog"{tls_module} )
server.document-root = "{root}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{root}/lighttpd-error.log"
accesslog.filename = "{root}/lighttpd-access.log"
server.upload-dirs = ( "{root}/tmp" )
{tls_lines}auth.backend = "htpasswd"
auth.backend.htpasswd.userfile = "{root}/htpasswd"
alias.url = ( "/git" => "{exec_path}/git-http-backend" )
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ( "" => "" )
  setenv.add-environment = (
    "GIT_PROJECT_ROOT" => "{root}/repos",
    "GIT_HTTP_EXPORT_ALL" => "1"
  )
  auth.require = ( "" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
}}
"#
    )
}

fn write_tls_files(root: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    let tls = root.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tagwatch test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let server_cert = params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(tls.join("ca.crt"), ca_cert.pem()).unwrap();
    std::fs::write(
        tls.join("server.pem"),
        format!("{}{}", server_cert.pem(), server_key.serialize_pem()),
    )
    .unwrap();
}

/// Starts the server `command_for(port)` builds (it writes the config naming the port) on a free
/// port, logging to `log`, and waits until the port accepts. The port is free when asked and bound a
/// moment later, so a rare collision is retried with another one.
pub fn spawn_on_free_port(log: &Path, mut command_for: impl FnMut(u16) -> Command) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_port();
        let log_file = std::fs::File::create(log).unwrap();
        let mut child = command_for(port)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("the server program is installed (tests/install-deps.sh)");
        if wait_for_port(port, &mut child) {
            return (child, port);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!(
        "the server did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Waits until something accepts on `port`; false when `child` exits first or 10 s pass.
fn wait_for_port(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `DIRECTORY/NAME.git`, seeded by [`seed_bare_repo`].
pub fn seed_bare_repo_in(directory: &Path, name: &str) -> PathBuf {
    let bare = directory.join(format!("{name}.git"));
    seed_bare_repo(&bare);
    bare
}

/// `git init --bare -b main` plus one seed commit holding README.md and [`SEED_FILE`].
pub fn seed_bare_repo(bare: &Path) {
    run(Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(bare));
    let work = tempfile::tempdir().unwrap();
    run(Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(work.path()));
    std::fs::create_dir_all(work.path().join("clusters/prod")).unwrap();
    std::fs::write(work.path().join("README.md"), "# config\n").unwrap();
    std::fs::write(work.path().join(SEED_FILE), SEED_CONTENT).unwrap();
    git_in(work.path(), &["add", "-A"]);
    git_in(work.path(), &["commit", "-q", "-m", "seed"]);
    git_in(
        work.path(),
        &["push", "-q", &bare.display().to_string(), "main"],
    );
}

/// Makes a commit on `branch` of `bare` the way a human would (the `git` CLI, its own clone), changing
/// `file` to `content`. Returns the new commit id.
pub fn human_commit(bare: &Path, branch: &str, file: &str, content: &str, message: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    run(Command::new("git")
        .args(["clone", "-q", "-b", branch])
        .arg(bare)
        .arg(work.path()));
    let path = work.path().join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    git_in(work.path(), &["add", "-A"]);
    git_in(work.path(), &["commit", "-q", "-m", message]);
    git_in(work.path(), &["push", "-q", "origin", branch]);
    git_in(work.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_string()
}

/// Runs `git ARGS` in `directory` as a test user, and returns stdout; panics on failure.
pub fn git_in(directory: &Path, args: &[&str]) -> String {
    output(
        Command::new("git")
            .args([
                "-c",
                "user.name=Human",
                "-c",
                "user.email=human@example.com",
            ])
            .args(["-c", "safe.directory=*", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(directory),
    )
}

/// `git --git-dir BARE ARGS` (reading a remote's bare repo).
pub fn git_bare(bare: &Path, args: &[&str]) -> String {
    output(
        Command::new("git")
            .args(["-c", "safe.directory=*", "--git-dir"])
            .arg(bare)
            .args(args),
    )
}

fn output(command: &mut Command) -> String {
    let result = command
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("start the command");
    assert!(
        result.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    String::from_utf8(result.stdout).unwrap()
}

fn run(command: &mut Command) {
    output(command);
}
