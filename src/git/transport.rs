//! libgit2 callbacks for one network operation: credentials (bounded, so a wrong password fails instead
//! of looping), SSH host keys against the configured `known_hosts`, an extra TLS CA, push statuses —
//! and the mapping of whatever went wrong to a typed [`GitError`].

use std::cell::RefCell;
use std::path::Path;

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};

use super::error::{GitError, scrub, server_trouble};
use super::known_hosts::{HostKeyStatus, KnownHosts, host_name};
use super::settings::{DEFAULT_SSH_USERNAME, DEFAULT_TOKEN_USERNAME, GitAuth, RemoteSettings};

/// Callback state for one remote; build one per network operation.
pub(crate) struct Transport<'s> {
    settings: &'s RemoteSettings,
    known_hosts: Option<KnownHosts>,
    anchors: Vec<TrustAnchor<'static>>,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    credentials_offered: u32,
    credentials_problem: Option<String>,
    host_key_problem: Option<(String, String)>,
    push_statuses: Vec<(String, String)>,
    /// What the server said on the side band (`remote: …` lines: hooks, receive-pack's errors),
    /// bounded by [`MAX_REMOTE_MESSAGES`].
    remote_messages: Vec<u8>,
}

/// Bytes of the server's side-band messages kept per operation: enough for a hook's explanation.
const MAX_REMOTE_MESSAGES: usize = 4096;

impl<'s> Transport<'s> {
    pub(crate) fn new(settings: &'s RemoteSettings) -> Result<Self, GitError> {
        let known_hosts = match &settings.auth {
            GitAuth::Ssh {
                known_hosts_file: Some(path),
                ..
            } => Some(read_known_hosts(settings, path)?),
            GitAuth::Ssh { .. } => Some(KnownHosts::default()),
            _ => None,
        };
        if let GitAuth::Ssh { key_file, .. } = &settings.auth
            && let Err(error) = std::fs::File::open(key_file)
        {
            return Err(GitError::Authentication {
                url: settings.redacted_url(),
                detail: format!(
                    "cannot read the SSH key file {}: {error}",
                    key_file.display()
                ),
            });
        }
        let anchors = match &settings.ca_file {
            Some(path) => read_anchors(settings, path)?,
            None => Vec::new(),
        };
        Ok(Transport {
            settings,
            known_hosts,
            anchors,
            state: RefCell::new(State::default()),
        })
    }

    pub(crate) fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(|url, username_from_url, allowed| {
            self.credentials(url, username_from_url, allowed)
        });
        callbacks.certificate_check(|cert, host| self.certificate_check(cert, host));
        callbacks.sideband_progress(|data| {
            let mut state = self.state.borrow_mut();
            let room = MAX_REMOTE_MESSAGES.saturating_sub(state.remote_messages.len());
            state
                .remote_messages
                .extend_from_slice(&data[..data.len().min(room)]);
            true
        });
        callbacks.push_update_reference(|reference, status| {
            if let Some(status) = status {
                self.state
                    .borrow_mut()
                    .push_statuses
                    .push((reference.to_string(), status.to_string()));
            }
            Ok(())
        });
        callbacks
    }

    /// The server's side-band messages so far, scrubbed: one line each, progress meters left out.
    pub(crate) fn remote_messages(&self) -> Vec<String> {
        let state = self.state.borrow();
        String::from_utf8_lossy(&state.remote_messages)
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.contains("% ("))
            .map(|line| scrub(line, &self.settings.url, &self.settings.auth.secrets()))
            .collect()
    }

    /// Refs the server refused in the last push, with its reason.
    pub(crate) fn take_push_statuses(&self) -> Vec<(String, String)> {
        std::mem::take(&mut self.state.borrow_mut().push_statuses)
    }

    fn credentials(
        &self,
        url: &str,
        username_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        let mut state = self.state.borrow_mut();
        // libgit2 follows the first redirect of a request; credentials go only to the configured server,
        // never to wherever a redirect points.
        let configured = authority(&self.settings.url);
        if authority(url) != configured {
            state.credentials_problem = Some(format!(
                "the server redirected to another host; credentials are only sent to {}",
                configured.unwrap_or_default()
            ));
            return Err(git2::Error::from_str(
                "credentials withheld from another host",
            ));
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(username_from_url.unwrap_or(DEFAULT_SSH_USERNAME));
        }
        // libgit2 asks again after every rejection; one offer per operation turns a wrong password
        // into an error instead of an endless loop.
        if state.credentials_offered > 0 {
            state.credentials_problem = Some("the credentials were rejected".to_string());
            return Err(git2::Error::from_str("credentials rejected"));
        }
        state.credentials_offered += 1;
        match &self.settings.auth {
            GitAuth::Token { token } if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                Cred::userpass_plaintext(
                    username_from_url.unwrap_or(DEFAULT_TOKEN_USERNAME),
                    token.expose(),
                )
            }
            GitAuth::Basic { username, password }
                if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
            {
                Cred::userpass_plaintext(username, password.expose())
            }
            GitAuth::Ssh { key_file, .. } if allowed.contains(CredentialType::SSH_KEY) => {
                Cred::ssh_key(
                    username_from_url.unwrap_or(DEFAULT_SSH_USERNAME),
                    None,
                    key_file,
                    None,
                )
            }
            GitAuth::None => {
                state.credentials_problem =
                    Some("the remote asks for credentials and none are configured".to_string());
                Err(git2::Error::from_str("no credentials configured"))
            }
            other => {
                state.credentials_problem = Some(format!(
                    "the remote asks for {allowed:?} credentials, but {} auth is configured",
                    auth_kind(other)
                ));
                Err(git2::Error::from_str("credential kind mismatch"))
            }
        }
    }

    fn certificate_check(
        &self,
        cert: &git2::cert::Cert<'_>,
        host: &str,
    ) -> Result<CertificateCheckStatus, git2::Error> {
        if let Some(hostkey) = cert.as_hostkey() {
            let port = ssh_port(&self.settings.url);
            let name = host_name(host, port);
            let (Some(known_hosts), Some(key)) = (&self.known_hosts, hostkey.hostkey()) else {
                return self.reject_host(&name, "no known_hosts configured for an SSH remote");
            };
            let accept_unknown = matches!(
                self.settings.auth,
                GitAuth::Ssh {
                    accept_unknown_hosts: true,
                    ..
                }
            );
            return match known_hosts.check(host, port, key) {
                HostKeyStatus::Trusted => Ok(CertificateCheckStatus::CertificateOk),
                HostKeyStatus::Unknown if accept_unknown => {
                    tracing::warn!(host = %name, "accepting an unknown SSH host key (acceptUnknownHosts)");
                    Ok(CertificateCheckStatus::CertificateOk)
                }
                HostKeyStatus::Unknown => {
                    self.reject_host(&name, "the host is not listed in known_hosts")
                }
                HostKeyStatus::Changed => self.reject_host(
                    &name,
                    "the host presented a key that differs from known_hosts (changed key or interception)",
                ),
                HostKeyStatus::OtherKeyTypes => self.reject_host(
                    &name,
                    "the host presented a key of a type known_hosts does not list for it; add that key (ssh-keyscan -t TYPE)",
                ),
                HostKeyStatus::Revoked => {
                    self.reject_host(&name, "the host key is marked @revoked")
                }
            };
        }
        if let Some(x509) = cert.as_x509()
            && !self.anchors.is_empty()
            && verify_with_anchors(&self.anchors, x509.data(), host)
        {
            return Ok(CertificateCheckStatus::CertificateOk);
        }
        // Everything else is decided by libgit2's own verification against the system roots.
        Ok(CertificateCheckStatus::CertificatePassthrough)
    }

    fn reject_host(&self, name: &str, reason: &str) -> Result<CertificateCheckStatus, git2::Error> {
        self.state.borrow_mut().host_key_problem = Some((name.to_string(), reason.to_string()));
        Err(git2::Error::from_str(reason))
    }

    /// Turns a libgit2 failure of `operation` into a typed error, using what the callbacks saw.
    pub(crate) fn classify(&self, operation: &'static str, error: &git2::Error) -> GitError {
        let url = self.settings.redacted_url();
        let detail = scrub(
            error.message(),
            &self.settings.url,
            &self.settings.auth.secrets(),
        );
        let messages = self.remote_messages();
        let detail = if messages.is_empty() {
            detail
        } else {
            let said: String = messages.join("; ").chars().take(500).collect();
            format!("{detail} (the server said: {said})")
        };
        let state = self.state.borrow();
        if let Some((host, reason)) = &state.host_key_problem {
            return GitError::HostKey {
                url,
                host: host.clone(),
                reason: reason.clone(),
            };
        }
        if let Some(problem) = &state.credentials_problem {
            return GitError::Authentication {
                url,
                detail: problem.clone(),
            };
        }
        classify_plain(operation, url, detail, error)
    }
}

fn classify_plain(
    operation: &'static str,
    url: String,
    detail: String,
    error: &git2::Error,
) -> GitError {
    use git2::ErrorClass as Class;
    use git2::ErrorCode as Code;
    let lower = detail.to_ascii_lowercase();
    if error.code() == Code::Certificate || error.class() == Class::Ssl {
        return GitError::Certificate { url, detail };
    }
    if error.code() == Code::Auth
        || lower.contains("authenticat")
        || lower.contains("status code: 401")
        || lower.contains("status code: 403")
    {
        return GitError::Authentication { url, detail };
    }
    let missing = lower.contains("status code: 404")
        || lower.contains("could not find repository")
        || lower.contains("failed to resolve path")
        || lower.contains("not a git repository")
        || lower.contains("does not appear to be a git repository")
        || lower.contains("repository not found");
    if missing {
        return GitError::MissingRepository { url, detail };
    }
    let network = matches!(error.class(), Class::Net | Class::Os)
        || lower.contains("failed to connect")
        || lower.contains("connection refused")
        || lower.contains("timed out")
        || lower.contains("connection reset")
        || lower.contains("broken pipe")
        || lower.contains("early eof")
        // A connection cut part-way through an HTTP answer (libgit2's HTTP parser sees the end early).
        || lower.contains("invalid eof state")
        || lower.contains("unexpected eof")
        || lower.contains("connection closed")
        || lower.contains("failed to start ssh session")
        || lower.contains("failed to resolve address");
    if network {
        return GitError::Unreachable { url, detail };
    }
    // Any other HTTP-level failure but a 4xx status is the connection or a server in trouble (an
    // answer cut part-way through trips libgit2's parser in several ways).
    let server_error = lower.contains("status code: 5")
        || (error.class() == Class::Http && !lower.contains("status code: 4"));
    let locked = error.code() == Code::Locked;
    let trouble = server_trouble(&detail);
    GitError::Operation {
        operation,
        url,
        detail,
        transient: server_error || locked || trouble,
    }
}

fn auth_kind(auth: &GitAuth) -> &'static str {
    match auth {
        GitAuth::None => "no",
        GitAuth::Token { .. } => "token",
        GitAuth::Basic { .. } => "basic",
        GitAuth::Ssh { .. } => "SSH key",
    }
}

fn read_known_hosts(settings: &RemoteSettings, path: &Path) -> Result<KnownHosts, GitError> {
    std::fs::read_to_string(path)
        .map(|text| KnownHosts::parse(&text))
        .map_err(|error| GitError::HostKey {
            url: settings.redacted_url(),
            host: settings.redacted_url(),
            reason: format!("cannot read known_hosts file {}: {error}", path.display()),
        })
}

fn read_anchors(
    settings: &RemoteSettings,
    path: &Path,
) -> Result<Vec<TrustAnchor<'static>>, GitError> {
    let invalid = |detail: String| GitError::Certificate {
        url: settings.redacted_url(),
        detail: format!("CA file {}: {detail}", path.display()),
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| invalid(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(error.to_string()))?;
    if certificates.is_empty() {
        return Err(invalid("no PEM certificate in the file".to_string()));
    }
    certificates
        .iter()
        .map(|certificate| {
            webpki::anchor_from_trusted_cert(certificate)
                .map(|anchor| anchor.to_owned())
                .map_err(|error| invalid(error.to_string()))
        })
        .collect()
}

/// Whether the server's leaf certificate chains directly to one of the configured CAs and names `host`.
/// libgit2 hands over only the leaf, so a CA that signs through intermediates must be given as the
/// intermediate itself.
fn verify_with_anchors(anchors: &[TrustAnchor<'_>], leaf: &[u8], host: &str) -> bool {
    let leaf = CertificateDer::from(leaf);
    let Ok(end_entity) = webpki::EndEntityCert::try_from(&leaf) else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(server_name) = ServerName::try_from(host) else {
        return false;
    };
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            anchors,
            &[],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .is_ok()
        && end_entity
            .verify_is_valid_for_subject_name(&server_name)
            .is_ok()
}

/// `host[:port]` of a URL (lower-cased, userinfo dropped), or the host of scp-like `user@host:path`.
pub(crate) fn authority(url: &str) -> Option<String> {
    let authority = match url.split_once("://") {
        Some((_, rest)) => rest.split(['/', '?', '#']).next()?,
        None => url.split_once(':')?.0,
    };
    let host_port = authority.rsplit('@').next()?.to_ascii_lowercase();
    // libgit2 re-formats URLs without their scheme's default port.
    let default_port = match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("http") => ":80",
        Some("https") => ":443",
        Some("ssh") => ":22",
        _ => "",
    };
    match host_port.strip_suffix(default_port) {
        Some(host) if !default_port.is_empty() => Some(host.to_string()),
        _ => Some(host_port),
    }
}

/// The port of an `ssh://` URL (22 when absent, and for scp-like `user@host:path`).
pub(crate) fn ssh_port(url: &str) -> u16 {
    let Some(rest) = url.strip_prefix("ssh://") else {
        return 22;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let port = if let Some(end) = host_port.find(']') {
        host_port[end + 1..].strip_prefix(':')
    } else {
        host_port.split_once(':').map(|(_, port)| port)
    };
    port.and_then(|port| port.parse().ok()).unwrap_or(22)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libgit2_failures_map_to_classes() {
        use git2::{ErrorClass as Class, ErrorCode as Code};
        let cases = [
            (
                Code::GenericError,
                Class::Net,
                "failed to connect to 10.0.0.1: Connection refused",
                "Unreachable",
            ),
            (
                Code::GenericError,
                Class::Ssh,
                "failed to start SSH session: Connection reset by peer",
                "Unreachable",
            ),
            (
                Code::GenericError,
                Class::Http,
                "unexpected http status code: 502",
                "Operation",
            ),
            (
                Code::GenericError,
                Class::Http,
                "http parser did not consume entire buffer: Invalid EOF state",
                "Unreachable",
            ),
            (
                Code::GenericError,
                Class::Http,
                "unexpectedly large parse",
                "Operation",
            ),
            (
                Code::GenericError,
                Class::Http,
                "unexpected http status code: 404",
                "MissingRepository",
            ),
            (
                Code::Auth,
                Class::Http,
                "too many redirects or authentication replays",
                "Authentication",
            ),
            (
                Code::Certificate,
                Class::Ssl,
                "the SSL certificate is invalid",
                "Certificate",
            ),
            (
                Code::GenericError,
                Class::Reference,
                "cannot lock ref",
                "Operation",
            ),
        ];
        for (code, class, message, expected) in cases {
            let error = git2::Error::new(code, class, message);
            let mapped = classify_plain("fetch", "u".into(), message.into(), &error);
            let name = format!("{mapped:?}");
            assert!(name.starts_with(expected), "{message}: {name}");
        }
        let server_error = git2::Error::new(Code::GenericError, Class::Http, "status code: 503");
        let mapped = classify_plain(
            "fetch",
            "u".into(),
            "status code: 503".into(),
            &server_error,
        );
        assert_eq!(mapped.class(), super::super::ErrorClass::Transient);
        let cut = git2::Error::new(Code::GenericError, Class::Http, "unexpectedly large parse");
        let mapped = classify_plain("fetch", "u".into(), "unexpectedly large parse".into(), &cut);
        assert_eq!(mapped.class(), super::super::ErrorClass::Transient);
        let missing = git2::Error::new(Code::GenericError, Class::Http, "status code: 410");
        let mapped = classify_plain("fetch", "u".into(), "status code: 410".into(), &missing);
        assert_eq!(mapped.class(), super::super::ErrorClass::Permanent);
    }

    #[test]
    fn authority_ignores_userinfo_and_paths() {
        assert_eq!(
            authority("https://bot:tok@Git.Example.com:8443/a.git?x").as_deref(),
            Some("git.example.com:8443")
        );
        assert_eq!(
            authority("git@example.com:acme/x.git").as_deref(),
            Some("example.com")
        );
        assert_ne!(
            authority("http://127.0.0.1:1/a"),
            authority("http://127.0.0.1:2/a")
        );
        assert_eq!(
            authority("https://example.com:443/a"),
            authority("https://example.com/a")
        );
    }

    #[test]
    fn ssh_port_reads_explicit_ports_only() {
        assert_eq!(ssh_port("ssh://git@127.0.0.1:2222/srv/x.git"), 2222);
        assert_eq!(ssh_port("ssh://git@[::1]:2022/x.git"), 2022);
        assert_eq!(ssh_port("ssh://example.com/x.git"), 22);
        assert_eq!(ssh_port("git@example.com:acme/x.git"), 22);
    }
}
