//! The registry client against a real `docker-registry` (distribution 2.8.2): plain HTTP, HTTPS with a
//! generated CA, htpasswd basic auth, and `auth: token` with a real challenge flow; with proxies in
//! front for pagination, 429 and hostile tags (behaviour 2.8 does not have).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tagwatch::environment::Environment;
use tagwatch::reference::ImageReference;
use tagwatch::registry::{
    ErrorClass, PasswordSource, RegistryAuthSettings, RegistryClient, RegistryError,
    RegistrySettings,
};
use tagwatch::source::TagSource;

use crate::support::proxy::{Last, LinkStyle, Mode, Proxy};
use crate::support::registry::{Auth, PASSWORD, Registry};
use crate::support::token_issuer::DEFAULT_TOKEN_TTL_SECONDS;

const PASSWORD_ENV: &str = "TAGWATCH_TEST_REGISTRY_PASSWORD";
const CREATED: &str = "2024-03-01T12:00:00Z";

fn image(host: &str, repository: &str) -> ImageReference {
    ImageReference::parse(&format!("{host}/{repository}")).unwrap()
}

fn client(settings: Vec<RegistrySettings>, password: &str) -> RegistryClient {
    RegistryClient::new(
        settings,
        &Environment::from_pairs([(PASSWORD_ENV, password)]),
    )
    .unwrap()
}

/// Plain-HTTP settings for a proxy in front of a plain registry.
fn proxy_settings(proxy: &Proxy) -> RegistrySettings {
    let mut settings = RegistrySettings::anonymous(proxy.host.clone());
    settings.insecure = true;
    settings
}

/// Seeds `count` tags (`1.0.0` … in lexical-unfriendly numeric order) on one manifest.
async fn seed_tags(registry: &Registry, repository: &str, count: usize) -> Vec<String> {
    let seeder = registry.seeder(repository);
    let manifest = seeder.image_manifest(repository, CREATED, "amd64").await;
    let tags: Vec<String> = (0..count)
        .map(|i| format!("1.{}.{}", i / 100, i % 100))
        .collect();
    seeder.tag_all(repository, manifest, tags.clone(), 16).await;
    tags
}

/// `skopeo ARGS docker://HOST/IMAGE` against a plain-HTTP registry; its stdout.
fn skopeo(arguments: &[&str], host: &str, image: &str) -> Vec<u8> {
    let output = std::process::Command::new("skopeo")
        .args(arguments)
        .arg("--tls-verify=false")
        .arg(format!("docker://{host}/{image}"))
        .output()
        .expect("skopeo is installed (tests/install-deps.sh)");
    assert!(
        output.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn sorted(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags
}

/// Everything the client logs (all levels, every crate) while `body` runs, as text.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn start() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn ten_thousand_tags_list_unpaginated_and_through_link_pagination() {
    let registry = Registry::plain().await;
    let tags = seed_tags(&registry, "big/repo", 10_000).await;

    // 2.8.2 answers everything in one response, in storage order.
    let direct = client(vec![registry.settings(PASSWORD_ENV)], "");
    let listed = direct
        .list_tags(&image(&registry.host, "big/repo"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 10_000);
    assert_eq!(sorted(listed), sorted(tags.clone()));

    // Through a proxy that pages by 100 with relative `Link`s: 100 requests, every tag once, in order.
    let proxy = Proxy::start(
        &registry.url,
        Mode::Paginate {
            page: 100,
            link: LinkStyle::Relative,
            last: Last::Honour,
        },
    )
    .await;
    let paged = client(vec![proxy_settings(&proxy)], "");
    let listed = paged
        .list_tags(&image(&proxy.host, "big/repo"))
        .await
        .unwrap();
    assert_eq!(
        proxy.tag_pages.load(std::sync::atomic::Ordering::SeqCst),
        100
    );
    assert_eq!(listed, sorted(tags));
}

#[tokio::test]
async fn link_without_port_or_with_internal_host_is_followed_on_the_registrys_origin() {
    let registry = Registry::plain().await;
    let tags = seed_tags(&registry, "acme/api", 25).await;
    for link in [LinkStyle::WithoutPort, LinkStyle::InternalHost] {
        let proxy = Proxy::start(
            &registry.url,
            Mode::Paginate {
                page: 10,
                link,
                last: Last::Honour,
            },
        )
        .await;
        let client = client(vec![proxy_settings(&proxy)], "");
        let listed = client
            .list_tags(&image(&proxy.host, "acme/api"))
            .await
            .unwrap();
        assert_eq!(listed, sorted(tags.clone()), "{link:?}");
        assert_eq!(
            proxy.tag_pages.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "{link:?}"
        );
    }
}

#[tokio::test]
async fn duplicate_tags_across_pages_are_listed_once() {
    let registry = Registry::plain().await;
    let tags = seed_tags(&registry, "acme/dup", 30).await;
    let proxy = Proxy::start(
        &registry.url,
        Mode::Paginate {
            page: 7,
            link: LinkStyle::Relative,
            last: Last::Overlap,
        },
    )
    .await;
    let client = client(vec![proxy_settings(&proxy)], "");
    let listed = client
        .list_tags(&image(&proxy.host, "acme/dup"))
        .await
        .unwrap();
    assert_eq!(listed, sorted(tags));
    // 30 tags, 7 per page, each page after the first repeating one: 5 pages.
    assert_eq!(proxy.tag_pages.load(std::sync::atomic::Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_registry_ignoring_last_is_read_once_not_looped() {
    let registry = Registry::plain().await;
    let tags = seed_tags(&registry, "acme/loop", 12).await;
    let proxy = Proxy::start(
        &registry.url,
        Mode::Paginate {
            page: 5,
            link: LinkStyle::Relative,
            last: Last::Ignore,
        },
    )
    .await;
    let (logs, _guard) = CapturedLogs::start();
    let client = client(vec![proxy_settings(&proxy)], "");
    let listed = client
        .list_tags(&image(&proxy.host, "acme/loop"))
        .await
        .unwrap();
    // Page 1 again and again: the client keeps what it got, warns, and stops at the repeat.
    assert_eq!(listed, sorted(tags)[..5].to_vec());
    assert_eq!(proxy.tag_pages.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(logs.text().contains("WARN"), "{}", logs.text());
}

#[tokio::test]
async fn multi_arch_index_keeps_the_index_digest_and_created_comes_from_the_config_blob() {
    let registry = Registry::plain().await;
    let seeder = registry.seeder("acme/multi");
    let (index_digest, children) = seeder.push_index("acme/multi", "2.0.0", CREATED).await;
    let single = seeder
        .push_image("acme/multi", "1.0.0", "2023-01-02T03:04:05Z")
        .await;

    let client = client(vec![registry.settings(PASSWORD_ENV)], "");
    let reference = image(&registry.host, "acme/multi");
    let digest = client.manifest_digest(&reference, "2.0.0").await.unwrap();
    assert_eq!(digest, index_digest);
    assert!(!children.contains(&digest));
    assert_eq!(
        client.manifest_digest(&reference, "1.0.0").await.unwrap(),
        single
    );

    let created = client.created(&reference, "2.0.0").await.unwrap().unwrap();
    assert_eq!(created.to_rfc3339(), "2024-03-01T12:00:00+00:00");
    let created = client.created(&reference, "1.0.0").await.unwrap().unwrap();
    assert_eq!(created.to_rfc3339(), "2023-01-02T03:04:05+00:00");

    // skopeo, an independent client, agrees on the digests and the creation time.
    let raw_index = skopeo(&["inspect", "--raw"], &registry.host, "acme/multi:2.0.0");
    assert_eq!(crate::support::seed::sha256(&raw_index), index_digest);
    let inspected: serde_json::Value =
        serde_json::from_slice(&skopeo(&["inspect"], &registry.host, "acme/multi:1.0.0")).unwrap();
    assert_eq!(inspected["Digest"], single.as_str());
    assert_eq!(inspected["Created"], "2023-01-02T03:04:05Z");

    let missing = client
        .manifest_digest(&reference, "9.9.9")
        .await
        .unwrap_err();
    assert_eq!(missing.class(), ErrorClass::Permanent, "{missing}");
}

#[tokio::test]
async fn config_blob_is_fetched_once_per_digest() {
    let registry = Registry::plain().await;
    let seeder = registry.seeder("acme/cache");
    let manifest = seeder.image_manifest("acme/cache", CREATED, "amd64").await;
    seeder
        .tag_all(
            "acme/cache",
            manifest.clone(),
            vec!["a".into(), "b".into()],
            1,
        )
        .await;
    let proxy = Proxy::start(&registry.url, Mode::InjectTags(Vec::new())).await;
    let client = client(vec![proxy_settings(&proxy)], "");
    let reference = image(&proxy.host, "acme/cache");
    let requests = || proxy.requests.load(std::sync::atomic::Ordering::SeqCst);

    assert!(client.created(&reference, "a").await.unwrap().is_some());
    assert_eq!(requests(), 2, "manifest + config blob");
    // Same config digest under another tag, and again: only the manifests are read.
    assert!(client.created(&reference, "b").await.unwrap().is_some());
    assert!(
        client
            .clone()
            .created(&reference, "a")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(requests(), 4, "no second config fetch");
}

#[tokio::test]
async fn basic_auth_over_tls_with_a_custom_ca_and_wrong_credentials_fail_clearly() {
    let registry = Registry::start(true, Auth::Htpasswd).await;
    let tags = seed_tags(&registry, "private/app", 3).await;
    let reference = image(&registry.host, "private/app");

    let good = client(vec![registry.settings(PASSWORD_ENV)], PASSWORD);
    assert_eq!(
        sorted(good.list_tags(&reference).await.unwrap()),
        sorted(tags.clone())
    );

    // The password from a file (trailing newline ignored).
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{PASSWORD}").unwrap();
    let mut settings = registry.settings(PASSWORD_ENV);
    settings.auth = RegistryAuthSettings::Basic {
        username: "tester".into(),
        password: PasswordSource::File(file.path().to_path_buf()),
    };
    let from_file = RegistryClient::new(vec![settings], &Environment::default()).unwrap();
    assert_eq!(from_file.list_tags(&reference).await.unwrap().len(), 3);

    // The same credentials from a docker config.json `auths` entry.
    let docker_config = tempfile::NamedTempFile::new().unwrap();
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("tester:{PASSWORD}"),
    );
    std::fs::write(
        docker_config.path(),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.host),
    )
    .unwrap();
    let mut settings = registry.settings(PASSWORD_ENV);
    settings.auth = RegistryAuthSettings::DockerConfig {
        path: docker_config.path().to_path_buf(),
    };
    let from_docker_config = RegistryClient::new(vec![settings], &Environment::default()).unwrap();
    assert_eq!(
        from_docker_config
            .list_tags(&reference)
            .await
            .unwrap()
            .len(),
        3
    );

    let wrong_password = "wrong-password-0xDEADBEEF";
    let (logs, _guard) = CapturedLogs::start();
    let wrong = client(vec![registry.settings(PASSWORD_ENV)], wrong_password);
    let error = wrong.list_tags(&reference).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { .. }),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Permanent);
    let message = error.to_string();
    assert!(
        message.contains(&registry.host) && message.contains("private/app"),
        "{message}"
    );
    assert!(message.contains("rejected the credentials"), "{message}");
    for text in [
        message,
        format!("{error:?}"),
        format!("{wrong:?}"),
        logs.text(),
    ] {
        assert!(!text.contains(wrong_password), "password leaked: {text}");
    }

    // Without the CA the certificate is refused: TLS is verified by default.
    let mut untrusted = registry.settings(PASSWORD_ENV);
    untrusted.ca_file = None;
    let error = client(vec![untrusted], PASSWORD)
        .list_tags(&reference)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn bearer_challenge_flow_caches_the_token_and_never_logs_a_secret() {
    let registry = Registry::start(
        false,
        Auth::Token {
            ttl_seconds: DEFAULT_TOKEN_TTL_SECONDS,
        },
    )
    .await;
    let tags = seed_tags(&registry, "team/svc", 4).await;
    let reference = image(&registry.host, "team/svc");
    let issuer = registry.token_issuer.as_ref().unwrap();

    let (logs, _guard) = CapturedLogs::start();
    let client = client(vec![registry.settings(PASSWORD_ENV)], PASSWORD);
    assert_eq!(
        sorted(client.list_tags(&reference).await.unwrap()),
        sorted(tags)
    );
    let digest = client.manifest_digest(&reference, "1.0.0").await.unwrap();
    assert!(digest.starts_with("sha256:"));
    assert!(client.created(&reference, "1.0.0").await.unwrap().is_some());
    assert_eq!(client.list_tags(&reference).await.unwrap().len(), 4);
    // One token for the repository's pull scope, reused until it expires.
    assert_eq!(issuer.issued.load(std::sync::atomic::Ordering::SeqCst), 1);

    let wrong = self::client(vec![registry.settings(PASSWORD_ENV)], "not-the-password-42");
    let error = wrong.list_tags(&reference).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("token service"), "{error}");

    let text = logs.text();
    assert!(
        text.contains("team/svc"),
        "the span carries the image: {text}"
    );
    let served = issuer.served.lock().unwrap().clone();
    assert!(!served.is_empty());
    for secret in served
        .iter()
        .map(String::as_str)
        .chain([PASSWORD, "not-the-password-42"])
    {
        assert!(!text.contains(secret), "a secret reached the logs");
        assert!(!format!("{error} {error:?} {client:?}").contains(secret));
    }
}

#[tokio::test]
async fn bearer_token_is_renewed_when_it_expires() {
    // 4 s tokens: the client renews them 2 s early (half the lifetime, as the margin is capped there).
    let registry = Registry::start(false, Auth::Token { ttl_seconds: 4 }).await;
    seed_tags(&registry, "team/short", 2).await;
    let issuer = registry.token_issuer.as_ref().unwrap();
    let issued = || issuer.issued.load(std::sync::atomic::Ordering::SeqCst);
    let client = client(vec![registry.settings(PASSWORD_ENV)], PASSWORD);
    let reference = image(&registry.host, "team/short");
    assert_eq!(client.list_tags(&reference).await.unwrap().len(), 2);
    assert_eq!(client.list_tags(&reference).await.unwrap().len(), 2);
    assert_eq!(issued(), 1, "the token is reused while valid");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(client.list_tags(&reference).await.unwrap().len(), 2);
    assert_eq!(issued(), 2, "an expiring token is replaced before use");
}

#[tokio::test]
async fn rate_limited_registry_is_retried_after_retry_after() {
    let registry = Registry::plain().await;
    let tags = seed_tags(&registry, "acme/busy", 2).await;
    let proxy = Proxy::start(
        &registry.url,
        Mode::Refuse {
            failures: 2,
            status: 429,
            retry_after_seconds: Some(1),
        },
    )
    .await;
    let client = client(vec![proxy_settings(&proxy)], "");
    let started = Instant::now();
    let listed = client
        .list_tags(&image(&proxy.host, "acme/busy"))
        .await
        .unwrap();
    assert_eq!(sorted(listed), sorted(tags));
    assert_eq!(proxy.requests.load(std::sync::atomic::Ordering::SeqCst), 3);
    // Both waits honoured the server's one second (not the 200 ms exponential start).
    assert!(started.elapsed() >= Duration::from_millis(1900));

    // A registry that keeps refusing: the error says rate-limited, with the server's hint.
    let refusing = Proxy::start(
        &registry.url,
        Mode::Refuse {
            failures: usize::MAX,
            status: 429,
            retry_after_seconds: Some(0),
        },
    )
    .await;
    let error = self::client(vec![proxy_settings(&refusing)], "")
        .list_tags(&image(&refusing.host, "acme/busy"))
        .await
        .unwrap_err();
    assert_eq!(
        error.class(),
        ErrorClass::RateLimited {
            retry_after: Some(Duration::ZERO)
        },
        "{error}"
    );
    assert!(error.to_string().contains("429"), "{error}");
}

#[tokio::test]
async fn unavailable_registry_is_retried_with_backoff_then_reported_as_transient() {
    let registry = Registry::plain().await;
    let seeder = registry.seeder("acme/flaky");
    let digest = seeder.push_image("acme/flaky", "1.0.0", CREATED).await;
    let flaky = Proxy::start(
        &registry.url,
        Mode::Refuse {
            failures: 2,
            status: 503,
            retry_after_seconds: None,
        },
    )
    .await;
    let client = client(vec![proxy_settings(&flaky)], "");
    let reference = image(&flaky.host, "acme/flaky");
    assert_eq!(
        client.manifest_digest(&reference, "1.0.0").await.unwrap(),
        digest
    );
    assert_eq!(flaky.requests.load(std::sync::atomic::Ordering::SeqCst), 3);

    let down = Proxy::start(
        &registry.url,
        Mode::Refuse {
            failures: usize::MAX,
            status: 502,
            retry_after_seconds: None,
        },
    )
    .await;
    let error = self::client(vec![proxy_settings(&down)], "")
        .manifest_digest(&image(&down.host, "acme/flaky"), "1.0.0")
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
    // Four attempts in all (backoff::DEFAULT_MAX_ATTEMPTS), then a clear error.
    assert_eq!(down.requests.load(std::sync::atomic::Ordering::SeqCst), 4);
    assert!(
        error.to_string().contains("502") && error.to_string().contains("4 attempts"),
        "{error}"
    );
}

#[tokio::test]
async fn tags_outside_the_grammar_are_dropped_and_logged_escaped() {
    let registry = Registry::plain().await;
    let tags = seed_tags(&registry, "acme/hostile", 3).await;
    let hostile = vec![
        "1.2.3\nimage: evil/backdoor:latest".to_string(),
        "2.0.0\"quoted".to_string(),
        ".hidden".to_string(),
        "a".repeat(129),
    ];
    let proxy = Proxy::start(&registry.url, Mode::InjectTags(hostile)).await;
    let (logs, _guard) = CapturedLogs::start();
    let client = client(vec![proxy_settings(&proxy)], "");
    let listed = client
        .list_tags(&image(&proxy.host, "acme/hostile"))
        .await
        .unwrap();
    assert_eq!(sorted(listed), sorted(tags));
    let text = logs.text();
    assert!(
        text.contains(r"1.2.3\nimage: evil/backdoor:latest"),
        "{text}"
    );
    assert!(text.contains(r#"2.0.0\"quoted"#), "{text}");
    assert!(
        !text.contains("1.2.3\nimage"),
        "a raw newline from the registry reached the log"
    );
}

#[tokio::test]
async fn unreachable_registry_is_a_transient_error_naming_the_url() {
    let port = crate::support::registry::free_port();
    let host = format!("127.0.0.1:{port}");
    let mut settings = RegistrySettings::anonymous(host.clone());
    settings.insecure = true;
    let client = client(vec![settings], "");
    let error = client
        .list_tags(&image(&host, "nobody/home"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { .. }),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Transient);
    assert!(error.to_string().contains(&host), "{error}");
    assert!(error.hint().is_some());
}

#[tokio::test]
async fn requests_to_one_registry_respect_its_concurrency_limit() {
    let registry = Registry::plain().await;
    for index in 0..12 {
        let repository = format!("limit/repo-{index}");
        let manifest = registry
            .seeder(&repository)
            .image_manifest(&repository, CREATED, "amd64")
            .await;
        registry
            .seeder(&repository)
            .tag_all(&repository, manifest, vec!["1.0.0".into()], 1)
            .await;
    }
    let proxy = Proxy::start(&registry.url, Mode::InjectTags(Vec::new())).await;
    let mut settings = proxy_settings(&proxy);
    settings.max_concurrency = 2;
    let client = client(vec![settings], "");
    let mut listings = tokio::task::JoinSet::new();
    for index in 0..12 {
        let (client, reference) = (
            client.clone(),
            image(&proxy.host, &format!("limit/repo-{index}")),
        );
        listings.spawn(async move { client.list_tags(&reference).await });
    }
    while let Some(result) = listings.join_next().await {
        assert_eq!(result.unwrap().unwrap(), vec!["1.0.0".to_string()]);
    }
    let max = proxy
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=2).contains(&max),
        "{max} requests in flight with a limit of 2"
    );
}
