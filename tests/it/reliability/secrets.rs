//! The secrets sweep: a distinct, known secret in every credential slot tagwatch has — the registry
//! password and the bearer tokens its token service issues, a git token in a remote URL, a git token
//! from `tokenEnv`, a git password from `passwordFile`, an SSH private key, the forge token, every webhook
//! token and HMAC secret (two of them travel in the request path), and a notify URL with its token —
//! then every command (`validate`, `resolve`, `plan`, `set`, `run --once`, `status`, `rollback`) and the
//! daemon (webhooks valid and invalid, a bump, `/metrics`, `/api/v1/status`) at trace level
//! (`TAGWATCH_LOG=trace` plus `-vv`). No secret may appear in any stdout, stderr or log line, the
//! metrics, the status API, any commit (message or identity) on any ref of any remote, any pull request
//! title, body or comment, any notification, or any byte of the state directory.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::*;
use crate::reconcile::deployment;
use crate::support::daemon::Daemon;
use crate::support::fake_forge::{FakeForge, Flavor, NAME, OWNER};
use crate::support::git_http::GitHttpServer;
use crate::support::ports::free_port;
use crate::support::registry::{Auth, PASSWORD, Registry, USER};
use crate::support::sshd::SshServer;

/// In a remote URL (refused by validation), and as a password from `passwordEnv`.
const GIT_URL_TOKEN: &str = "git-url-token-S3CRET-a1b2";
const GIT_ENV_TOKEN: &str = "git-env-token-S3CRET-c3d4";
const GIT_FILE_PASSWORD: &str = "git-file-password-S3CRET-e5f6";
const FORGE_TOKEN: &str = "forge-token-S3CRET-g7h8";
const NOTIFY_TOKEN: &str = "notify-url-token-S3CRET-i9j0";
/// Webhook endpoint → (variable, secret).
const WEBHOOKS: &[(&str, &str, &str)] = &[
    ("generic", "HOOK_GENERIC", "hook-generic-S3CRET-k1l2"),
    (
        "distribution",
        "HOOK_DISTRIBUTION",
        "hook-distribution-S3CRET-m3n4",
    ),
    ("github", "HOOK_GITHUB", "hook-github-hmac-S3CRET-o5p6"),
    ("harbor", "HOOK_HARBOR", "hook-harbor-S3CRET-q7r8"),
    (
        "dockerhub",
        "HOOK_DOCKERHUB",
        "hook-dockerhub-path-S3CRET-s9t0",
    ),
    ("quay", "HOOK_QUAY", "hook-quay-path-S3CRET-u1v2"),
    ("acr", "HOOK_ACR", "hook-acr-S3CRET-w3x4"),
];

/// A receiver for notifications at `/hook/{token}`; it refuses the first one (a failure to report)
/// and keeps every body.
async fn notify_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = axum::Router::new().route(
        "/hook/{token}",
        axum::routing::post({
            let bodies = bodies.clone();
            move |body: String| {
                let (bodies, refused) = (bodies.clone(), refused.clone());
                async move {
                    bodies.lock().unwrap().push(body);
                    if refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook/{NOTIFY_TOKEN}"), bodies)
}

/// Everything one place said, with where it came from.
struct Seen(Vec<(String, Vec<u8>)>);

impl Seen {
    fn add(&mut self, place: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.0.push((place.into(), bytes.into()));
    }

    fn output(&mut self, command: &str, output: &std::process::Output) {
        self.add(format!("{command}: stdout"), output.stdout.clone());
        self.add(format!("{command}: stderr"), output.stderr.clone());
    }

    /// Every file under `directory`, byte for byte.
    fn files(&mut self, directory: &Path) {
        for entry in walk(directory) {
            self.add(entry.display().to_string(), std::fs::read(&entry).unwrap());
        }
    }

    /// (place, secret) of every leak.
    fn leaks(&self, secrets: &[String]) -> Vec<(String, String)> {
        let mut leaks = Vec::new();
        for (place, bytes) in &self.0 {
            for secret in secrets {
                if bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes())
                {
                    leaks.push((place.clone(), secret.clone()));
                }
            }
        }
        leaks
    }
}

fn walk(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.is_file() {
            files.push(path);
        }
    }
    files
}

/// Every commit (message, author, committer) on every ref of `bare`.
fn commits(bare: &Path) -> String {
    git_bare(
        bare,
        &["log", "--all", "--format=%H %an <%ae> %cn <%ce>%n%B"],
    )
}

fn hmac_sha256(secret: &str, body: &[u8]) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_log_commit_pull_request_or_state_file() {
    let registry = Registry::start(false, Auth::Token { ttl_seconds: 300 }).await;
    let seeder = registry.seeder(IMAGE);
    for tag in ["1.0.0", "1.2.0"] {
        seeder
            .push_image(IMAGE, tag, crate::reconcile::CREATED)
            .await;
    }
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let files = [("apps/a.yaml", deployment(&host, "1.0.0", ""))];

    let url_server = GitHttpServer::start("x-access-token", GIT_URL_TOKEN);
    let url_bare = url_server.create_repo("in-url");
    crate::reconcile::add_files(&url_bare, &files);
    let env_server = GitHttpServer::start("x-access-token", GIT_ENV_TOKEN);
    let pr_bare = env_server.create_repo("pr");
    crate::reconcile::add_files(&pr_bare, &files);
    let file_server = GitHttpServer::start("bot", GIT_FILE_PASSWORD);
    let file_bare = file_server.create_repo("in-file");
    crate::reconcile::add_files(&file_bare, &files);
    let sshd = SshServer::start();
    let ssh_bare = sshd.create_repo("over-ssh");
    crate::reconcile::add_files(&ssh_bare, &files);
    let ssh_key = std::fs::read_to_string(sshd.client_key()).unwrap();
    let password_file = root.path().join("git-password");
    std::fs::write(&password_file, format!("{GIT_FILE_PASSWORD}\n")).unwrap();
    let fake = FakeForge::start(Flavor::GitHub, &pr_bare, FORGE_TOKEN).await;
    let (notify_url, notified) = notify_receiver().await;
    let address = format!("127.0.0.1:{}", free_port());

    let author = format!("author: {{ name: tagwatch-bot, email: {BOT_EMAIL} }}");
    let repositories = [
        format!(
            "  - name: in-url\n    url: {}\n    paths: [apps]\n    auth: {{ username: x-access-token, passwordEnv: GIT_PASSWORD }}\n    writeBack: {{ mode: push, {author} }}\n",
            url_server.url("in-url")
        ),
        format!(
            "  - name: pr\n    url: {}\n    paths: [apps]\n    auth: {{ tokenEnv: GIT_TOKEN }}\n    writeBack:\n      mode: pull-request\n      {author}\n      forge: {{ kind: github, api: \"{}\", repo: {OWNER}/{NAME}, tokenEnv: FORGE_TOKEN }}\n",
            env_server.url("pr"),
            fake.api_url()
        ),
        format!(
            "  - name: in-file\n    url: {}\n    paths: [apps]\n    auth: {{ username: bot, passwordFile: {} }}\n    writeBack: {{ mode: push, {author} }}\n",
            file_server.url("in-file"),
            password_file.display()
        ),
        format!(
            "  - name: ssh\n    url: {}\n    paths: [apps]\n    auth: {{ sshKeyFile: {}, knownHostsFile: {} }}\n    writeBack: {{ mode: push, {author} }}\n",
            sshd.url(&ssh_bare),
            sshd.client_key().display(),
            sshd.known_hosts().display()
        ),
    ]
    .concat();
    let webhooks: String = WEBHOOKS
        .iter()
        .map(|(endpoint, variable, _)| {
            let kind = if *endpoint == "github" {
                "secretEnv"
            } else {
                "tokenEnv"
            };
            format!("    {endpoint}: {{ {kind}: {variable} }}\n")
        })
        .collect();
    std::fs::create_dir_all(root.path().join("policies")).unwrap();
    std::fs::write(
        root.path().join("policies/app.yaml"),
        crate::reconcile::policy(&host, ""),
    )
    .unwrap();
    let config = root.path().join("tagwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {host}\n    insecure: true\n    auth: {{ username: {USER}, passwordEnv: REGISTRY_PASSWORD }}\nrepositories:\n{repositories}policies: [policies/]\nnotify:\n  - urlEnv: NOTIFY_URL\n    format: json\n{}",
            crate::support::daemon::daemon_block(&address, &webhooks)
        ),
    )
    .unwrap();

    let mut env: Vec<(&str, &str)> = vec![
        ("REGISTRY_PASSWORD", PASSWORD),
        ("GIT_PASSWORD", GIT_URL_TOKEN),
        ("GIT_TOKEN", GIT_ENV_TOKEN),
        ("FORGE_TOKEN", FORGE_TOKEN),
        ("NOTIFY_URL", &notify_url),
        ("TAGWATCH_LOG", "trace"),
    ];
    env.extend(
        WEBHOOKS
            .iter()
            .map(|(_, variable, secret)| (*variable, *secret)),
    );
    let image = format!("{host}/{IMAGE}");
    let mut seen = Seen(Vec::new());
    let run = |seen: &mut Seen, args: &[&str]| {
        let mut all = vec!["-vv"];
        all.extend_from_slice(args);
        let output = tagwatch(&config, &all, &env);
        seen.output(&args.join(" "), &output);
        output
    };

    // A token written into a remote URL is refused by every command that reads the config, without
    // repeating it.
    let in_url = root.path().join("token-in-url.yaml");
    std::fs::write(
        &in_url,
        std::fs::read_to_string(&config).unwrap().replace(
            &url_server.url("in-url"),
            &url_server.url("in-url").replace(
                "http://",
                &format!("http://x-access-token:{GIT_URL_TOKEN}@"),
            ),
        ),
    )
    .unwrap();
    for command in [&["validate"][..], &["plan"], &["run", "--once"]] {
        let mut args = vec!["-vv"];
        args.extend_from_slice(command);
        let output = tagwatch(&in_url, &args, &env);
        assert_eq!(output.status.code(), Some(2), "{command:?}");
        assert!(
            text(&output.stdout).contains("credentials in the URL")
                || text(&output.stderr).contains("credentials in the URL"),
            "{command:?}: {}",
            text(&output.stderr)
        );
        seen.output(&format!("token in URL: {}", command.join(" ")), &output);
    }

    let output = run(&mut seen, &["validate"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let output = run(&mut seen, &["resolve", "app"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("1.2.0"),
        "{}",
        text(&output.stdout)
    );
    let output = run(&mut seen, &["plan"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let output = run(&mut seen, &["run", "--once"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    for bare in [&url_bare, &file_bare, &ssh_bare] {
        assert_eq!(
            crate::reconcile::show(bare, "apps/a.yaml"),
            deployment(&host, "1.2.0", "")
        );
    }
    assert_eq!(fake.pulls().len(), 1);
    // No daemon ran yet: `status` says there is nothing to show (exit 1); after the daemon, it reads
    // the state it kept (below).
    let output = run(&mut seen, &["status", "--output", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let output = run(&mut seen, &["rollback", &image, "--repository", "in-url"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("a.yaml"), deployment(&host, "1.0.0", "")).unwrap();
    let assignment = format!("{image}={image}:1.2.0");
    let output = run(
        &mut seen,
        &["set", &assignment, &work.display().to_string()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    // The daemon: webhooks with right and wrong credentials, a new tag, the metrics and the status.
    let mut daemon_env = env.clone();
    daemon_env.retain(|(name, _)| *name != "TAGWATCH_LOG");
    daemon_env.push(("TAGWATCH_LOG", "trace"));
    let daemon = Daemon::start(&config, &address, &daemon_env).await;
    daemon.ready().await;
    seeder
        .push_image(IMAGE, "1.3.0", crate::reconcile::CREATED)
        .await;
    let body = serde_json::to_vec(&serde_json::json!({ "image": image, "tag": "1.3.0" })).unwrap();
    let secret = |endpoint: &str| {
        WEBHOOKS
            .iter()
            .find(|(name, _, _)| *name == endpoint)
            .unwrap()
            .2
    };
    assert_eq!(
        daemon
            .post(
                "/webhook/generic",
                &[("authorization", &format!("Bearer {}", secret("generic")))],
                body.clone(),
            )
            .await,
        202
    );
    for wrong in ["Bearer not-the-token", "Bearer hook-generic-S3CRET-k1l"] {
        assert_eq!(
            daemon
                .post(
                    "/webhook/generic",
                    &[("authorization", wrong)],
                    body.clone()
                )
                .await,
            401
        );
    }
    let signature = format!("sha256={}", hmac_sha256(secret("github"), &body));
    daemon
        .post(
            "/webhook/github",
            &[
                ("x-hub-signature-256", &signature),
                ("x-github-event", "package"),
            ],
            body.clone(),
        )
        .await;
    for endpoint in ["dockerhub", "quay"] {
        daemon
            .post(
                &format!("/webhook/{endpoint}/{}", secret(endpoint)),
                &[("content-type", "application/json")],
                body.clone(),
            )
            .await;
    }
    for endpoint in ["harbor", "distribution", "acr"] {
        let value = if endpoint == "harbor" {
            secret(endpoint).to_string()
        } else {
            format!("Bearer {}", secret(endpoint))
        };
        daemon
            .post(
                &format!("/webhook/{endpoint}"),
                &[("authorization", &value)],
                body.clone(),
            )
            .await;
    }
    daemon
        .until("the new tag on every push-mode remote", async || {
            [&file_bare, &ssh_bare].iter().all(|bare| {
                crate::reconcile::show(bare, "apps/a.yaml") == deployment(&host, "1.3.0", "")
            })
        })
        .await;
    daemon
        .until(
            "a notification delivered after the refused one",
            async || notified.lock().unwrap().len() >= 2,
        )
        .await;
    let (_, metrics) = daemon.get("/metrics").await.unwrap();
    let (_, status) = daemon.get("/api/v1/status").await.unwrap();
    seen.add("/metrics", metrics);
    seen.add("/api/v1/status", status);
    let mut daemon = daemon;
    daemon.signal("TERM");
    assert_eq!(daemon.wait().code(), Some(0));
    seen.add("daemon log", daemon.log().join("\n"));
    drop(daemon);
    let output = run(&mut seen, &["status", "--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    for (name, bare) in [
        ("in-url", &url_bare),
        ("pr", &pr_bare),
        ("in-file", &file_bare),
        ("ssh", &ssh_bare),
    ] {
        seen.add(format!("commits of {name}"), commits(bare));
    }
    for pull in fake.pulls() {
        seen.add(
            format!("pull request {}", pull.number),
            format!(
                "{}\n{}\n{}",
                pull.title,
                pull.body,
                pull.comments.join("\n")
            ),
        );
    }
    for (index, body) in notified.lock().unwrap().iter().enumerate() {
        seen.add(format!("notification {index}"), body.clone());
    }
    seen.files(&root.path().join("state"));

    let mut secrets: Vec<String> = [
        PASSWORD,
        GIT_URL_TOKEN,
        GIT_ENV_TOKEN,
        GIT_FILE_PASSWORD,
        FORGE_TOKEN,
        NOTIFY_TOKEN,
    ]
    .iter()
    .map(|secret| secret.to_string())
    .collect();
    secrets.extend(WEBHOOKS.iter().map(|(_, _, secret)| secret.to_string()));
    // The SSH key's body (any of its base64 lines is secret material).
    secrets.extend(
        ssh_key
            .lines()
            .filter(|line| !line.starts_with("-----") && line.len() > 20)
            .map(str::to_string),
    );
    let served = registry
        .token_issuer
        .as_ref()
        .unwrap()
        .served
        .lock()
        .unwrap()
        .clone();
    assert!(!served.is_empty(), "no bearer token was issued");
    secrets.extend(served);
    // The search finds what it looks for (a control), and the secrets were in use.
    let control = Seen(vec![(
        "control".into(),
        format!("x{FORGE_TOKEN}x").into_bytes(),
    )]);
    assert_eq!(control.leaks(&secrets).len(), 1);
    assert!(
        fake.log()
            .iter()
            .all(|call| call.authorization.as_deref() == Some(&format!("Bearer {FORGE_TOKEN}")))
    );
    let places = seen.0.len();
    let leaks = seen.leaks(&secrets);
    assert!(
        leaks.is_empty(),
        "{} leak(s) across {places} places: {leaks:#?}",
        leaks.len()
    );
    eprintln!(
        "secrets sweep: {} secrets, {places} places, {} bytes searched, 0 leaks",
        secrets.len(),
        seen.0.iter().map(|(_, bytes)| bytes.len()).sum::<usize>()
    );
}
