//! Transports and their failures: file, HTTP Basic / token, HTTPS with a private CA, SSH with
//! known_hosts; each failure is a typed, classified error that never shows a credential.

use super::*;

#[test]
fn http_basic_auth_clone_commit_push() {
    let server = GitHttpServer::start("git", PASSWORD);
    let bare = server.create_repo("config");
    assert_round_trip(&bare, &basic_settings(&server), "1.2.0");
}

#[test]
fn http_token_auth_pushes_as_x_access_token() {
    // The htpasswd file knows only `x-access-token`: a push that lands went through as that user.
    let server = GitHttpServer::start("x-access-token", TOKEN);
    let bare = server.create_repo("config");
    assert_round_trip(&bare, &token_settings(&server, TOKEN), "1.3.0");
}

#[test]
fn https_with_custom_ca_works_and_without_it_is_a_certificate_error() {
    let server = GitHttpServer::start_tls("git", PASSWORD);
    let bare = server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let untrusted = basic_settings(&server);
    let error = open_and_fetch(&root.path().join("a"), &untrusted).unwrap_err();
    assert!(
        matches!(error, GitError::Certificate { .. }),
        "unexpected: {error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Permanent);

    let trusted = untrusted.with_ca_file(server.ca_file());
    let (store, head) = open_and_fetch(&root.path().join("b"), &trusted).unwrap();
    let commit = bump_and_push(&store, head, "2.0.0");
    assert_eq!(remote_head(&bare), commit);
}

#[test]
fn ssh_with_known_hosts_clone_commit_push() {
    let server = SshServer::start();
    let bare = server.create_repo("config");
    let settings = ssh_settings(&server, &bare, server.known_hosts(), false);
    assert_round_trip(&bare, &settings, "3.0.0");
}

#[test]
fn ssh_unknown_or_changed_host_key_is_rejected() {
    let server = SshServer::start();
    let bare = server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let empty = root.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();

    let unknown = open_and_fetch(
        &root.path().join("a"),
        &ssh_settings(&server, &bare, empty.clone(), false),
    )
    .unwrap_err();
    match &unknown {
        GitError::HostKey { host, reason, .. } => {
            assert!(host.contains("127.0.0.1"), "{host}");
            assert!(reason.contains("not listed"), "{reason}");
        }
        other => panic!("expected a host key error, got {other:?}"),
    }
    assert_eq!(unknown.class(), ErrorClass::Permanent);

    let changed = open_and_fetch(
        &root.path().join("b"),
        &ssh_settings(&server, &bare, server.wrong_known_hosts(), true),
    )
    .unwrap_err();
    match &changed {
        GitError::HostKey { reason, .. } => assert!(reason.contains("differs"), "{reason}"),
        other => panic!("a changed key is rejected even with acceptUnknownHosts: {other:?}"),
    }

    // Explicitly allowed: an unknown host is accepted.
    let (_store, head) = open_and_fetch(
        &root.path().join("c"),
        &ssh_settings(&server, &bare, empty, true),
    )
    .unwrap();
    assert_eq!(head.to_string(), remote_head(&bare));
}

#[test]
fn wrong_password_is_an_authentication_error_that_hides_the_password() {
    let server = GitHttpServer::start("git", PASSWORD);
    server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let wrong = "wrong-Password-0f9e8d";
    let settings = RemoteSettings::new(server.url("config"), "main").with_auth(GitAuth::Basic {
        username: "git".to_string(),
        password: Secret::new(wrong),
    });
    let error = open_and_fetch(root.path(), &settings).unwrap_err();
    assert!(
        matches!(error, GitError::Authentication { .. }),
        "unexpected: {error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Permanent);
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("127.0.0.1"), "names the remote: {shown}");
    assert!(!shown.contains(wrong), "{shown}");

    // No credentials at all is the same kind of error, with its own explanation.
    let none = RemoteSettings::new(server.url("config"), "main");
    let error = open_and_fetch(&root.path().join("none"), &none).unwrap_err();
    match error {
        GitError::Authentication { detail, .. } => assert!(detail.contains("none are configured")),
        other => panic!("unexpected: {other:?}"),
    }
}

#[test]
fn credentials_are_not_sent_to_a_host_a_redirect_points_to() {
    let target = GitHttpServer::start("x-access-token", TOKEN);
    let bare = target.create_repo("config");
    let redirector = GitHttpServer::start_redirecting_to(&target);
    let root = tempfile::tempdir().unwrap();
    let error = open_and_fetch(root.path(), &token_settings(&redirector, TOKEN)).unwrap_err();
    match &error {
        GitError::Authentication { detail, .. } => {
            assert!(detail.contains("redirected to another host"), "{detail}")
        }
        other => panic!("unexpected: {other:?}"),
    }
    // The same token works when the target itself is configured.
    assert_round_trip(&bare, &token_settings(&target, TOKEN), "1.6.0");
}

#[test]
fn credentials_in_the_url_are_redacted_from_errors() {
    let server = GitHttpServer::start("git", PASSWORD);
    let root = tempfile::tempdir().unwrap();
    // The repository does not exist: the server answers 404 and libgit2 quotes the URL.
    let url = server
        .url("missing")
        .replace("://", &format!("://git:{PASSWORD}@"));
    let error = open_and_fetch(root.path(), &RemoteSettings::new(url, "main")).unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("***@127.0.0.1"), "{shown}");
}

#[test]
fn unreachable_remote_is_a_transient_error() {
    let root = tempfile::tempdir().unwrap();
    let key = root.path().join("key");
    keygen(&key, "unused");
    let http_port = crate::support::ports::free_port();
    let ssh_port = crate::support::ports::free_port();
    let http = RemoteSettings::new(
        format!("http://127.0.0.1:{http_port}/git/config.git"),
        "main",
    );
    let ssh = RemoteSettings::new(
        format!("ssh://git@127.0.0.1:{ssh_port}/srv/config.git"),
        "main",
    )
    .with_auth(GitAuth::Ssh {
        key_file: key,
        known_hosts_file: None,
        accept_unknown_hosts: false,
    });
    for (settings, port) in [(http, http_port), (ssh, ssh_port)] {
        let error = open_and_fetch(root.path(), &settings).unwrap_err();
        assert!(
            matches!(error, GitError::Unreachable { .. }),
            "unexpected: {error:?}"
        );
        assert_eq!(error.class(), ErrorClass::Transient);
        assert!(error.to_string().contains(&format!("127.0.0.1:{port}")));
    }
}

#[test]
fn missing_repository_is_named_on_every_transport() {
    let root = tempfile::tempdir().unwrap();
    let http = GitHttpServer::start("git", PASSWORD);
    let ssh = SshServer::start();
    let ssh_missing = ssh_settings(
        &ssh,
        &root.path().join("absent.git"),
        ssh.known_hosts(),
        false,
    );
    let cases = [
        RemoteSettings::new(
            format!("file://{}/absent.git", root.path().display()),
            "main",
        ),
        RemoteSettings {
            url: http.url("absent"),
            ..basic_settings(&http)
        },
        ssh_missing,
    ];
    for (n, settings) in cases.iter().enumerate() {
        let error = open_and_fetch(&root.path().join(n.to_string()), settings).unwrap_err();
        assert!(
            matches!(error, GitError::MissingRepository { .. }),
            "{}: unexpected {error:?}",
            settings.url
        );
        assert_eq!(error.class(), ErrorClass::Permanent);
    }
}

#[test]
fn ssh_key_problems_are_authentication_errors() {
    let server = SshServer::start();
    let bare = server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let stranger = root.path().join("stranger");
    keygen(&stranger, "not-authorized");
    let missing = root.path().join("no-such-key");
    for (n, key_file) in [stranger, missing].into_iter().enumerate() {
        let settings = RemoteSettings::new(server.url(&bare), "main").with_auth(GitAuth::Ssh {
            key_file,
            known_hosts_file: Some(server.known_hosts()),
            accept_unknown_hosts: false,
        });
        let error = open_and_fetch(&root.path().join(n.to_string()), &settings).unwrap_err();
        assert!(
            matches!(error, GitError::Authentication { .. }),
            "unexpected: {error:?}"
        );
        assert_eq!(error.class(), ErrorClass::Permanent);
    }
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn credentials_never_appear_in_logs_or_errors() {
    let server = GitHttpServer::start("x-access-token", TOKEN);
    let bare = server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // tracing-core caches per callsite whether anyone listens. With a single scoped subscriber alive it
    // asks only the *registering thread's* default, so a parallel test thread can mark the library's
    // callsites "never" for everyone. A second live dispatcher makes it consult every one of them.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    let mut shown = String::new();
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        let good = token_settings(&server, TOKEN);
        shown.push_str(&format!("{good:?}"));
        let (store, head) = open_and_fetch(&root.path().join("a"), &good).unwrap();
        shown.push_str(&format!("{store:?}"));
        bump_and_push(&store, head, "5.0.0");
        tracing::debug!(settings = ?good, "settings as logged by a caller");

        let bad = token_settings(&server, &format!("{TOKEN}-expired"));
        let error = open_and_fetch(&root.path().join("b"), &bad).unwrap_err();
        shown.push_str(&format!("{error} {error:?}"));
        tracing::error!(error = %error, "write-back failed");
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("pushed"), "the capture saw the push: {logs}");
    assert!(logs.contains("[redacted]"), "{logs}");
    assert!(!logs.contains(TOKEN), "token in logs: {logs}");
    assert!(!shown.contains(TOKEN), "token in errors or Debug: {shown}");
    assert!(shown.contains("authentication"), "{shown}");
    assert_eq!(commit_count(&bare), 2);
    // And no commit message or file carries it either.
    assert!(!git_bare(&bare, &["log", "-p", "main"]).contains(TOKEN));
}
