//! A private `sshd -D -e -f CONFIG` on a free loopback port serving bare repositories through
//! `git-shell`. It logs in as the user running the tests, with a forced command (`git-shell -c`) on the
//! one authorized key, so no system user is created and no shell is reachable. Host key, client key and
//! `known_hosts` are generated per server; the system sshd is never touched.
//!
//! Pitfalls handled (tests/…/README of the reference scripts): `UsePAM no` (no PAM stack for a private
//! daemon), `StrictModes no` (the files live under world-writable /tmp), `/run/sshd` created when missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use super::git_http::{seed_bare_repo_in, spawn_on_free_port};

pub struct SshServer {
    child: Child,
    directory: TempDir,
    port: u16,
    user: String,
}

impl SshServer {
    pub fn start() -> Self {
        let directory = tempfile::tempdir().expect("temp dir");
        let root = directory.path();
        std::fs::create_dir_all(root.join("repos")).unwrap();
        keygen(&root.join("host_ed25519"), "tagwatch-test-host");
        keygen(&root.join("client_ed25519"), "tagwatch-test-client");
        let user = current_user();
        let git_shell = which("git-shell");
        let client_public = std::fs::read_to_string(root.join("client_ed25519.pub")).unwrap();
        std::fs::write(
            root.join("authorized_keys"),
            format!(
                "restrict,command=\"{git_shell} -c \\\"$SSH_ORIGINAL_COMMAND\\\"\" {}",
                client_public.trim()
            ),
        )
        .unwrap();
        // sshd's privilege-separation directory normally appears when the packaged service starts.
        if !Path::new("/run/sshd").exists() {
            std::fs::create_dir_all("/run/sshd")
                .expect("/run/sshd is missing and cannot be created (run the tests as root once)");
        }
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .expect("openssh-server is installed (tests/install-deps.sh)");
        let config = root.join("sshd_config");
        let (child, port) = spawn_on_free_port(&root.join("sshd.log"), |port| {
            std::fs::write(&config, sshd_config(root, port, &user)).unwrap();
            let mut command = Command::new(sshd);
            command.arg("-D").arg("-e").arg("-f").arg(&config);
            command
        });
        let host_public = std::fs::read_to_string(root.join("host_ed25519.pub")).unwrap();
        write_known_hosts(&root.join("known_hosts"), port, &host_public);
        SshServer {
            child,
            directory,
            port,
            user,
        }
    }

    /// A new bare repository with one seed commit on `main`; returns its path.
    pub fn create_repo(&self, name: &str) -> PathBuf {
        seed_bare_repo_in(&self.directory.path().join("repos"), name)
    }

    /// `ssh://USER@127.0.0.1:PORT/ABSOLUTE/PATH.git`
    pub fn url(&self, bare: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            bare.display()
        )
    }

    /// The client's private key (its public half is the one authorized key).
    pub fn client_key(&self) -> PathBuf {
        self.directory.path().join("client_ed25519")
    }

    /// `known_hosts` with this server's host key under `[127.0.0.1]:PORT`.
    pub fn known_hosts(&self) -> PathBuf {
        self.directory.path().join("known_hosts")
    }

    /// A `known_hosts` listing a different key for this server (a changed host key).
    pub fn wrong_known_hosts(&self) -> PathBuf {
        let other = self.directory.path().join("other_host");
        keygen(&other, "some-other-host");
        let public = std::fs::read_to_string(other.with_extension("pub")).unwrap();
        let path = self.directory.path().join("wrong_known_hosts");
        write_known_hosts(&path, self.port, &public);
        path
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd_config(root: &Path, port: u16, user: &str) -> String {
    let root = root.display();
    // Root may log in only through the forced command (git-shell), never to a shell.
    let root_login = if user == "root" {
        "forced-commands-only"
    } else {
        "no"
    };
    format!(
        "Port {port}
ListenAddress 127.0.0.1
HostKey {root}/host_ed25519
PidFile none
AuthorizedKeysFile {root}/authorized_keys
AllowUsers {user}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin {root_login}
UsePAM no
StrictModes no
PermitTTY no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitUserEnvironment no
PrintMotd no
LogLevel VERBOSE
"
    )
}

/// One `known_hosts` line for `[127.0.0.1]:PORT` with the key of `public_key_line` (a `.pub` file).
fn write_known_hosts(path: &Path, port: u16, public_key_line: &str) {
    let mut fields = public_key_line.split_whitespace();
    let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
    std::fs::write(path, format!("[127.0.0.1]:{port} {kind} {key}\n")).unwrap();
}

pub fn keygen(path: &Path, comment: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen is installed");
    assert!(status.success(), "ssh-keygen failed");
}

fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("id");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn which(program: &str) -> String {
    let output = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("sh");
    let path = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(!path.is_empty(), "{program} is not installed");
    path
}
