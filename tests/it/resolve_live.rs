//! `tagwatch resolve` end to end through the binary against the real registry: the config's
//! `registries:` entry, `minAge` read from real config blobs, `digest: true` pinning (also of a
//! multi-arch index), wrong credentials, hostile tags, a tag list longer than the page cap and an
//! unreachable registry.

use std::path::Path;
use std::sync::atomic::Ordering;

use tagwatch::registry::pagination::MAX_PAGES;

use crate::support::ports::free_port;
use crate::support::proxy::{Last, LinkStyle, Mode, Proxy};
use crate::support::registry::{Auth, PASSWORD, Registry, USER};

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Writes `tagwatch.yaml` (one registry entry) and one policy into `dir`, then runs
/// `tagwatch resolve NAME` there with exactly the environment given.
async fn resolve(
    dir: &Path,
    registry_entry: &str,
    policy_spec: &str,
    environment: &[(&str, &str)],
) -> Outcome {
    std::fs::write(
        dir.join("tagwatch.yaml"),
        format!("registries:\n{registry_entry}policies: [policy.yaml]\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("policy.yaml"),
        format!(
            "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: api }}\nspec:\n{policy_spec}"
        ),
    )
    .unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .args(["resolve", "api"])
        .current_dir(dir)
        .env_clear()
        .envs(environment.iter().copied())
        .output()
        .await
        .unwrap();
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn plain_entry(host: &str) -> String {
    format!("  - host: \"{host}\"\n    insecure: true\n")
}

fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_age_reads_real_config_blobs_and_digest_pins_the_chosen_tag() {
    let registry = Registry::plain().await;
    let seeder = registry.seeder("demo/api");
    let now = chrono::Utc::now();
    seeder
        .push_image("demo/api", "1.0.0", "2024-01-01T00:00:00Z")
        .await;
    let old_enough = seeder
        .push_image(
            "demo/api",
            "1.1.0",
            &rfc3339(now - chrono::Duration::days(2)),
        )
        .await;
    // The highest version, but pushed a minute ago: minAge 1h must pass it over.
    seeder
        .push_image(
            "demo/api",
            "1.2.0",
            &rfc3339(now - chrono::Duration::minutes(1)),
        )
        .await;
    seeder
        .push_image("demo/api", "2.0.0", "2024-01-01T00:00:00Z")
        .await;

    let dir = tempfile::tempdir().unwrap();
    let spec = format!(
        "  image: {}/demo/api\n  semver: {{ range: \"^1.0\" }}\n  minAge: 1h\n  digest: true\n",
        registry.host
    );
    let outcome = resolve(dir.path(), &plain_entry(&registry.host), &spec, &[]).await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, format!("1.1.0@{old_enough}\n"));

    // Without minAge the young 1.2.0 wins: the filter above was minAge's doing, not the range's.
    let spec = format!(
        "  image: {}/demo/api\n  semver: {{ range: \"^1.0\" }}\n",
        registry.host
    );
    let outcome = resolve(dir.path(), &plain_entry(&registry.host), &spec, &[]).await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "1.2.0\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_of_a_multi_arch_image_is_the_index_digest() {
    let registry = Registry::plain().await;
    let seeder = registry.seeder("demo/multi");
    let (index_digest, children) = seeder
        .push_index("demo/multi", "3.1.4", "2024-03-01T00:00:00Z")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let spec = format!(
        "  image: {}/demo/multi\n  semver: {{ range: \">=3\" }}\n  digest: true\n",
        registry.host
    );
    let outcome = resolve(dir.path(), &plain_entry(&registry.host), &spec, &[]).await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, format!("3.1.4@{index_digest}\n"));
    assert!(!children.contains(&index_digest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_exits_1_with_a_reason_that_never_shows_the_password() {
    let registry = Registry::start(true, Auth::Htpasswd).await;
    registry
        .seeder("demo/private")
        .push_image("demo/private", "1.0.0", "2024-01-01T00:00:00Z")
        .await;
    let ca = registry.ca_file.as_ref().unwrap().display().to_string();
    let entry = format!(
        "  - host: \"{}\"\n    tls: {{ ca: \"{ca}\" }}\n    auth: {{ username: {USER}, passwordEnv: REG_PASSWORD }}\n",
        registry.host
    );
    let spec = format!(
        "  image: {}/demo/private\n  semver: {{ range: \"*\" }}\n",
        registry.host
    );
    let dir = tempfile::tempdir().unwrap();

    let outcome = resolve(dir.path(), &entry, &spec, &[("REG_PASSWORD", PASSWORD)]).await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "1.0.0\n");

    let wrong = "wrong-password-4c1d9e";
    let outcome = resolve(dir.path(), &entry, &spec, &[("REG_PASSWORD", wrong)]).await;
    assert_eq!(outcome.code, Some(1), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "");
    assert!(
        outcome.stderr.contains(&registry.host),
        "the reason names the registry: {}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains(wrong), "{}", outcome.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_with_newlines_or_quotes_from_the_registry_are_never_printed_raw() {
    let registry = Registry::plain().await;
    registry
        .seeder("demo/api")
        .push_image("demo/api", "1.0.0", "2024-01-01T00:00:00Z")
        .await;
    let hostile = vec!["9.9.9\nimage: evil".to_string(), "9.9.9\"x".to_string()];
    let proxy = Proxy::start(&registry.url, Mode::InjectTags(hostile)).await;
    let spec = format!(
        "  image: {}/demo/api\n  semver: {{ range: \"*\" }}\n",
        proxy.host
    );
    let dir = tempfile::tempdir().unwrap();
    let outcome = resolve(dir.path(), &plain_entry(&proxy.host), &spec, &[]).await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "1.0.0\n");
    assert!(
        !outcome.stderr.contains("\nimage: evil"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains("9.9.9\"x"), "{}", outcome.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_list_past_the_page_cap_exits_1_and_chooses_nothing_from_part_of_it() {
    let registry = Registry::plain().await;
    let seeder = registry.seeder("demo/long");
    let manifest = seeder
        .image_manifest("demo/long", "2024-01-01T00:00:00Z", "amd64")
        .await;
    // 1000.0.0 … 2000.0.0: lexical order is version order, so the newest tag, 2000.0.0, is alone on
    // the page after the cap. Choosing from the pages read would pick 1999.0.0 — an older tag.
    let tags: Vec<String> = (1000..=1000 + MAX_PAGES)
        .map(|major| format!("{major}.0.0"))
        .collect();
    seeder.tag_all("demo/long", manifest, tags, 16).await;
    let proxy = Proxy::start(
        &registry.url,
        Mode::Paginate {
            page: 1,
            link: LinkStyle::Relative,
            last: Last::Honour,
        },
    )
    .await;
    let spec = format!(
        "  image: {}/demo/long\n  semver: {{ range: \"*\" }}\n",
        proxy.host
    );
    let dir = tempfile::tempdir().unwrap();
    let outcome = resolve(dir.path(), &plain_entry(&proxy.host), &spec, &[]).await;
    assert_eq!(outcome.code, Some(1), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "", "nothing is chosen");
    assert_eq!(proxy.tag_pages.load(Ordering::SeqCst), MAX_PAGES);
    for expected in [
        "demo/long".to_string(),
        "incomplete".to_string(),
        format!("more pages than the {MAX_PAGES}"),
    ] {
        assert!(
            outcome.stderr.contains(&expected),
            "the reason names {expected:?}: {}",
            outcome.stderr
        );
    }
    assert!(!outcome.stderr.contains("1999.0.0"), "{}", outcome.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_registry_exits_1_naming_it() {
    let host = format!("127.0.0.1:{}", free_port());
    let spec = format!("  image: {host}/demo/api\n  semver: {{ range: \"*\" }}\n");
    let dir = tempfile::tempdir().unwrap();
    let outcome = resolve(dir.path(), &plain_entry(&host), &spec, &[]).await;
    assert_eq!(outcome.code, Some(1), "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "");
    assert!(outcome.stderr.contains(&host), "{}", outcome.stderr);
}
