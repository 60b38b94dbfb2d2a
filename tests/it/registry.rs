//! The registry client against a real `docker-registry` (distribution 2.8.2): plain HTTP, HTTPS with a
//! generated CA, htpasswd basic auth, and `auth: token` with a real challenge flow; with proxies in
//! front for pagination, a refused page size, 429, hostile and oversized tag lists (behaviour 2.8
//! does not have).
//!
//! Retry, backoff and token-expiry tests run on paused time (`tokio::time::pause` once the registry is
//! up): they assert on the requests made and the virtual time that passed, never on the wall clock.
//! They reach the registry through `support::proxy`, whose upstream requests keep the paused clock
//! from jumping ahead while the registry answers.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tagwatch::environment::Environment;
use tagwatch::reference::ImageReference;
use tagwatch::registry::pagination::{MAX_LISTING_BYTES, MAX_LISTING_TAGS, PAGE_SIZE};
use tagwatch::registry::{
    ErrorClass, PasswordSource, RegistryAuthSettings, RegistryClient, RegistryError,
    RegistrySettings, Truncation,
};
use tagwatch::source::TagSource;

use crate::support::proxy::{Last, LinkStyle, Mode, Proxy};
use crate::support::registry::{Auth, PASSWORD, Registry};
use crate::support::token_issuer::DEFAULT_TOKEN_TTL_SECONDS;

/// Fails a test that would otherwise hang (a fetch stuck behind another); never reached when it passes.
const HANG_GUARD: Duration = Duration::from_secs(60);

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

/// Everything logged on this test's thread (all levels, every crate) while the guard lives.
///
/// One global TRACE subscriber writes into a per-thread buffer: `#[tokio::test]` runs each test, its
/// client and its in-process servers on one thread. (Scoped `set_default` subscribers raced with other
/// tests over tracing's global callsite-interest cache and sometimes lost the client's span.)
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<CapturedLogs>> = const { std::cell::RefCell::new(None) };
}

struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(logs) = &*capture.borrow() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|capture| capture.borrow_mut().take());
    }
}

impl CapturedLogs {
    fn start() -> (CapturedLogs, CaptureGuard) {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(|| ThreadWriter)
                .try_init()
                .expect("no other global tracing subscriber in the test binary");
        });
        let logs = CapturedLogs::default();
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(logs.clone()));
        (logs, CaptureGuard)
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
    let listing = paged
        .listing(&image(&proxy.host, "big/repo"))
        .await
        .unwrap();
    assert_eq!(
        proxy.tag_pages.load(std::sync::atomic::Ordering::SeqCst),
        100
    );
    assert_eq!(listing.pages, 100);
    assert_eq!(listing.tags, sorted(tags));
    // The first request asks for large pages; the proxy clamps `n` to its 100, as Quay does.
    let queries = proxy.tag_queries();
    assert_eq!(queries[0], format!("n={PAGE_SIZE}"));
    assert!(
        queries[1].starts_with("last=") && queries[1].ends_with("&n=100"),
        "{queries:?}"
    );
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
async fn a_registry_ignoring_last_fails_the_listing_instead_of_looping_or_returning_page_one() {
    let registry = Registry::plain().await;
    seed_tags(&registry, "acme/loop", 12).await;
    let proxy = Proxy::start(
        &registry.url,
        Mode::Paginate {
            page: 5,
            link: LinkStyle::Relative,
            last: Last::Ignore,
        },
    )
    .await;
    let client = client(vec![proxy_settings(&proxy)], "");
    let error = client
        .list_tags(&image(&proxy.host, "acme/loop"))
        .await
        .unwrap_err();
    // Page 1 again, with the same `Link`: stopped at the repeat, and the 5 tags read are not a list.
    assert!(
        matches!(
            error,
            RegistryError::IncompleteListing {
                truncation: Truncation::LinkLoop,
                pages: 2,
                tags: 5,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(proxy.tag_pages.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(error.class(), ErrorClass::Permanent);
    let message = error.to_string();
    assert!(
        message.contains("incomplete") && message.contains("acme/loop/tags/list"),
        "{message}"
    );
    assert!(error.hint().is_some_and(|hint| hint.contains("pagination")));
}

#[tokio::test]
async fn a_listing_with_more_tags_than_the_cap_fails_the_image_instead_of_being_cut_short() {
    let registry = Registry::plain().await;
    seed_tags(&registry, "acme/huge", 3).await;
    // One answer with MAX_LISTING_TAGS + 1 more valid, distinct tags (about 1.3 MB).
    let extra: Vec<String> = (0..=MAX_LISTING_TAGS)
        .map(|index| format!("2.{}.{}", index / 1000, index % 1000))
        .collect();
    let proxy = Proxy::start(&registry.url, Mode::InjectTags(extra)).await;
    let error = client(vec![proxy_settings(&proxy)], "")
        .list_tags(&image(&proxy.host, "acme/huge"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::IncompleteListing {
                truncation: Truncation::Tags {
                    limit: MAX_LISTING_TAGS
                },
                tags: MAX_LISTING_TAGS,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert!(
        error.to_string().contains(&MAX_LISTING_TAGS.to_string()),
        "the message names the limit: {error}"
    );
}

#[tokio::test]
async fn a_tag_list_over_the_byte_cap_is_refused_while_it_streams_in() {
    let registry = Registry::plain().await;
    seed_tags(&registry, "acme/padded", 3).await;
    // Padding a page with tags nobody could use (too long for the grammar): 17 MiB and more.
    let padding = "x".repeat(200);
    let extra: Vec<String> = (0..(MAX_LISTING_BYTES / 200 + 1000))
        .map(|index| format!("{padding}{index}"))
        .collect();
    let proxy = Proxy::start(&registry.url, Mode::InjectTags(extra)).await;
    let error = client(vec![proxy_settings(&proxy)], "")
        .list_tags(&image(&proxy.host, "acme/padded"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::IncompleteListing {
                truncation: Truncation::Bytes {
                    limit: MAX_LISTING_BYTES
                },
                pages: 0,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn a_registry_refusing_the_page_size_is_asked_again_without_it_and_remembered() {
    let registry = Registry::plain().await;
    let tags = seed_tags(&registry, "acme/strict", 5).await;
    // distribution 3.1.0 with `tags.maxtags: 100`: 400 PAGINATION_NUMBER_INVALID for n=1000.
    let proxy = Proxy::start(&registry.url, Mode::RejectPageSize { max: 100 }).await;
    let client = client(vec![proxy_settings(&proxy)], "");
    let reference = image(&proxy.host, "acme/strict");
    assert_eq!(
        sorted(client.list_tags(&reference).await.unwrap()),
        sorted(tags.clone())
    );
    assert_eq!(
        proxy.tag_queries(),
        [format!("n={PAGE_SIZE}"), String::new()]
    );
    // The next listing goes without `n` straight away.
    assert_eq!(client.list_tags(&reference).await.unwrap().len(), 5);
    assert_eq!(
        proxy.tag_queries(),
        [format!("n={PAGE_SIZE}"), String::new(), String::new()]
    );
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
async fn concurrent_created_lookups_of_one_digest_share_one_config_fetch() {
    let registry = Registry::plain().await;
    let seeder = registry.seeder("acme/burst");
    let manifest = seeder.image_manifest("acme/burst", CREATED, "amd64").await;
    let tags: Vec<String> = (0..8).map(|index| format!("1.0.{index}")).collect();
    seeder
        .tag_all("acme/burst", manifest, tags.clone(), 8)
        .await;
    let proxy = Proxy::start(&registry.url, Mode::InjectTags(Vec::new())).await;
    let client = client(vec![proxy_settings(&proxy)], "");
    let reference = image(&proxy.host, "acme/burst");
    let lookups = tags.iter().map(|tag| client.created(&reference, tag));
    for created in futures_util::future::join_all(lookups).await {
        assert_eq!(
            created.unwrap().unwrap().to_rfc3339(),
            "2024-03-01T12:00:00+00:00"
        );
    }
    // Eight manifests, one config blob between them.
    assert_eq!(proxy.requests.load(Ordering::SeqCst), 9);
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

    // Without the CA the certificate is refused: TLS is verified by default, and a certificate that
    // cannot be verified is permanent (retrying cannot help until the CA is configured).
    let mut untrusted = registry.settings(PASSWORD_ENV);
    untrusted.ca_file = None;
    let error = client(vec![untrusted], PASSWORD)
        .list_tags(&reference)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Certificate { .. }),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Permanent);
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
    let registry = Registry::start(
        false,
        Auth::Token {
            ttl_seconds: DEFAULT_TOKEN_TTL_SECONDS,
        },
    )
    .await;
    seed_tags(&registry, "team/short", 2).await;
    let proxy = Proxy::start(&registry.url, Mode::InjectTags(Vec::new())).await;
    let issuer = registry.token_issuer.as_ref().unwrap();
    let issued = || issuer.issued.load(Ordering::SeqCst);
    let mut settings = proxy_settings(&proxy);
    settings.auth = registry.settings(PASSWORD_ENV).auth;
    let client = client(vec![settings], PASSWORD);
    let reference = image(&proxy.host, "team/short");
    tokio::time::pause();
    assert_eq!(client.list_tags(&reference).await.unwrap().len(), 2);
    assert_eq!(client.list_tags(&reference).await.unwrap().len(), 2);
    assert_eq!(issued(), 1, "the token is reused while valid");
    // 300 s tokens are renewed 10 s before they expire: not yet at 289 s, at 291 s.
    tokio::time::advance(Duration::from_secs(289)).await;
    assert_eq!(client.list_tags(&reference).await.unwrap().len(), 2);
    assert_eq!(issued(), 1, "still valid");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(client.list_tags(&reference).await.unwrap().len(), 2);
    assert_eq!(issued(), 2, "an expiring token is replaced before use");
}

#[tokio::test]
async fn a_slow_token_for_one_repository_does_not_hold_up_another_repositorys() {
    let registry = Registry::start(
        false,
        Auth::Token {
            ttl_seconds: DEFAULT_TOKEN_TTL_SECONDS,
        },
    )
    .await;
    for repository in ["team/warm", "team/slow", "team/other"] {
        seed_tags(&registry, repository, 1).await;
    }
    let issuer = registry.token_issuer.as_ref().unwrap();
    let client = client(vec![registry.settings(PASSWORD_ENV)], PASSWORD);
    // The first listing learns that the registry wants Bearer tokens: from then on a repository's
    // token is fetched before its first request.
    client
        .list_tags(&image(&registry.host, "team/warm"))
        .await
        .unwrap();
    let slow_scope = "repository:team/slow:pull";
    let hold = issuer.hold(slow_scope);
    let slow = tokio::spawn({
        let (client, reference) = (client.clone(), image(&registry.host, "team/slow"));
        async move { client.list_tags(&reference).await }
    });
    issuer.wait_for_requests(slow_scope, 1).await;

    // team/slow's token is still being fetched; team/other's is fetched and used meanwhile.
    let other = tokio::time::timeout(
        HANG_GUARD,
        client.list_tags(&image(&registry.host, "team/other")),
    )
    .await
    .expect("a token fetch waited for another repository's");
    assert_eq!(other.unwrap(), ["1.0.0"]);
    assert!(!slow.is_finished());
    assert_eq!(issuer.requests_for("repository:team/other:pull"), 1);

    drop(hold);
    assert_eq!(slow.await.unwrap().unwrap(), ["1.0.0"]);
    assert_eq!(issuer.requests_for(slow_scope), 1);
}

#[tokio::test]
async fn concurrent_requests_for_one_repository_share_one_token_fetch() {
    let registry = Registry::start(
        false,
        Auth::Token {
            ttl_seconds: DEFAULT_TOKEN_TTL_SECONDS,
        },
    )
    .await;
    for repository in ["team/warm", "team/burst"] {
        seed_tags(&registry, repository, 1).await;
    }
    let issuer = registry.token_issuer.as_ref().unwrap();
    let client = client(vec![registry.settings(PASSWORD_ENV)], PASSWORD);
    client
        .list_tags(&image(&registry.host, "team/warm"))
        .await
        .unwrap();
    let scope = "repository:team/burst:pull";
    let hold = issuer.hold(scope);
    let mut listings = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, reference) = (client.clone(), image(&registry.host, "team/burst"));
        listings.spawn(async move { client.list_tags(&reference).await });
    }
    // All eight were polled before the first token request reached the issuer; they wait for it.
    issuer.wait_for_requests(scope, 1).await;
    drop(hold);
    while let Some(listing) = listings.join_next().await {
        assert_eq!(listing.unwrap().unwrap(), ["1.0.0"]);
    }
    assert_eq!(
        issuer.requests_for(scope),
        1,
        "one token fetch for the burst"
    );
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
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let listed = client
        .list_tags(&image(&proxy.host, "acme/busy"))
        .await
        .unwrap();
    assert_eq!(sorted(listed), sorted(tags));
    assert_eq!(proxy.requests.load(Ordering::SeqCst), 3);
    // Both waits were the server's one second, not the 100-200 ms exponential start, and nothing else
    // advanced the clock.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2100),
        "{waited:?}"
    );

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
    assert_eq!(refusing.requests.load(Ordering::SeqCst), 4);
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
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    assert_eq!(
        client.manifest_digest(&reference, "1.0.0").await.unwrap(),
        digest
    );
    assert_eq!(flaky.requests.load(Ordering::SeqCst), 3);
    // Two backoff steps with equal jitter: 100-200 ms, then 200-400 ms.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited <= Duration::from_millis(610),
        "{waited:?}"
    );

    let down = Proxy::start(
        &registry.url,
        Mode::Refuse {
            failures: usize::MAX,
            status: 502,
            retry_after_seconds: None,
        },
    )
    .await;
    let started = tokio::time::Instant::now();
    let error = self::client(vec![proxy_settings(&down)], "")
        .manifest_digest(&image(&down.host, "acme/flaky"), "1.0.0")
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
    // Four attempts in all (backoff::DEFAULT_MAX_ATTEMPTS), three waits, then a clear error.
    assert_eq!(down.requests.load(Ordering::SeqCst), 4);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited <= Duration::from_millis(1410),
        "{waited:?}"
    );
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
    let port = crate::support::ports::free_port();
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

#[test]
fn free_port_never_hands_out_a_port_twice() {
    let ports: Vec<u16> = (0..200)
        .map(|_| crate::support::ports::free_port())
        .collect();
    let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len());
}

/// The facts a pull-request body shows: source and revision from manifest annotations, from an
/// index's annotations, or from config labels (annotations win); created and digest as the registry
/// has them; read once per digest.
#[tokio::test]
async fn image_facts_come_from_annotations_or_labels_and_are_cached_per_digest() {
    use tagwatch::registry::{REVISION_ANNOTATION, SOURCE_ANNOTATION};
    let registry = Registry::plain().await;
    let seeder = registry.seeder("acme/facts");
    let repo = "https://github.com/acme/api";
    // Labels only (docker build --label).
    let labelled = seeder
        .labelled_manifest(
            "acme/facts",
            "2024-01-01T00:00:00Z",
            "amd64",
            &[(SOURCE_ANNOTATION, repo), (REVISION_ANNOTATION, "aaaaaaa1")],
            &[],
        )
        .await;
    let labelled_digest = seeder
        .put_manifest(
            "acme/facts",
            "1.0.0",
            &labelled,
            crate::support::seed::OCI_MANIFEST,
        )
        .await;
    // Manifest annotations win over labels.
    let annotated = seeder
        .labelled_manifest(
            "acme/facts",
            "2024-02-01T00:00:00Z",
            "amd64",
            &[(REVISION_ANNOTATION, "0000000")],
            &[(SOURCE_ANNOTATION, repo), (REVISION_ANNOTATION, "bbbbbbb2")],
        )
        .await;
    seeder
        .put_manifest(
            "acme/facts",
            "1.1.0",
            &annotated,
            crate::support::seed::OCI_MANIFEST,
        )
        .await;
    // An index carrying the annotations, over an image with labels.
    let index_digest = seeder
        .push_annotated_index(
            "acme/facts",
            "1.2.0",
            CREATED,
            &[(SOURCE_ANNOTATION, "https://example.invalid/other")],
            &[(SOURCE_ANNOTATION, repo), (REVISION_ANNOTATION, "ccccccc3")],
        )
        .await;
    // Neither.
    seeder.push_image("acme/facts", "0.9.0", CREATED).await;

    let proxy = Proxy::start(&registry.url, Mode::InjectTags(Vec::new())).await;
    let client = client(vec![proxy_settings(&proxy)], "");
    let reference = image(&proxy.host, "acme/facts");

    let facts = client.image_facts(&reference, "1.0.0").await.unwrap();
    assert_eq!(facts.digest.as_deref(), Some(labelled_digest.as_str()));
    assert_eq!(facts.source.as_deref(), Some(repo));
    assert_eq!(facts.revision.as_deref(), Some("aaaaaaa1"));
    assert_eq!(
        facts.created.unwrap().to_rfc3339(),
        "2024-01-01T00:00:00+00:00"
    );

    let facts = client.image_facts(&reference, "1.1.0").await.unwrap();
    assert_eq!(facts.revision.as_deref(), Some("bbbbbbb2"));

    let facts = client.image_facts(&reference, "1.2.0").await.unwrap();
    assert_eq!(facts.digest.as_deref(), Some(index_digest.as_str()));
    assert_eq!(facts.source.as_deref(), Some(repo));
    assert_eq!(facts.revision.as_deref(), Some("ccccccc3"));
    assert_eq!(
        facts.created.unwrap().to_rfc3339(),
        "2024-03-01T12:00:00+00:00"
    );

    let plain = client.image_facts(&reference, "0.9.0").await.unwrap();
    assert_eq!((plain.source, plain.revision), (None, None));
    assert!(plain.created.is_some() && plain.digest.is_some());

    // Cached per digest: asking again costs only the digest lookup.
    let before = proxy.requests.load(Ordering::SeqCst);
    let again = client.image_facts(&reference, "1.2.0").await.unwrap();
    assert_eq!(again.revision.as_deref(), Some("ccccccc3"));
    assert_eq!(proxy.requests.load(Ordering::SeqCst), before + 1);

    let missing = client.image_facts(&reference, "9.9.9").await.unwrap_err();
    assert_eq!(missing.class(), ErrorClass::Permanent, "{missing}");
}
