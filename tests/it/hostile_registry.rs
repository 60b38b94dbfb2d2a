//! Hostile and broken registries (issue 13): `tagwatch run --once` and the registry client against a
//! fault proxy (`support::fault_proxy`) in front of a real `docker-registry`, one image per fault next to
//! healthy images in the same cycle.
//!
//! What is asserted, for every fault: the run ends (each call within the client's own bounds: request
//! timeout, attempts, a wait in a call never longer than `backoff::DEFAULT_MAX_DELAY`), with the error
//! class the fault deserves; requests per image are bounded (no hot loop); no image is bumped from a
//! broken answer; no text from the registry reaches a file, a commit or a log line raw; and the healthy
//! images of the same cycle are bumped.

use std::collections::BTreeMap;

use base64::Engine;
use tagwatch::environment::Environment;
use tagwatch::reference::ImageReference;
use tagwatch::registry::{
    ErrorClass, PasswordSource, RegistryAuthSettings, RegistryClient, RegistryError,
    RegistrySettings,
};
use tagwatch::source::TagSource;

use crate::reconcile::{bare_repo, file_url, push_repository, show, tagwatch, text};
use crate::support::fault_proxy::{Fault, FaultProxy, Recorder};
use crate::support::git_http::git_bare;
use crate::support::registry::Registry;

const USER: &str = "fault-user";
const SECRET: &str = "fault-proxy-secret-9c1d7e";
const SECRET_ENV: &str = "TAGWATCH_FAULT_PROXY_PASSWORD";
const CREATED: &str = "2024-01-01T00:00:00Z";
/// Attempts per request (`backoff::DEFAULT_MAX_ATTEMPTS`) plus the first request of a registry that
/// learns its authentication scheme from a 401.
const MAX_REQUESTS_PER_CALL: usize = 4 + 1;
/// Text every hostile tag, body and error code carries: it never reaches a file or commit at all, and
/// a log line only escaped, inside one of tagwatch's own lines.
const MARKER: &str = "INJECTED";

fn image(host: &str, repository: &str) -> ImageReference {
    ImageReference::parse(&format!("{host}/{repository}")).unwrap()
}

fn basic_settings(host: &str) -> RegistrySettings {
    let mut settings = RegistrySettings::anonymous(host);
    settings.insecure = true;
    settings.auth = RegistryAuthSettings::Basic {
        username: USER.to_string(),
        password: PasswordSource::Env(SECRET_ENV.to_string()),
    };
    settings
}

/// Every way the credentials could be written: the password, and the Basic header's base64.
fn credential_forms() -> [String; 2] {
    [
        SECRET.to_string(),
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{SECRET}")),
    ]
}

/// A redirect to another host is followed without the credentials, and the other host's challenge is
/// not answered: it would receive the registry's password at a token "realm" of its choosing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_never_takes_the_credentials_along() {
    let registry = Registry::plain().await;
    let seeder = registry.seeder("acme/app");
    for tag in ["1.0.0", "1.1.0"] {
        seeder.push_image("acme/app", tag, CREATED).await;
    }
    seeder.push_image("acme/moved", "1.0.0", CREATED).await;
    let elsewhere = Recorder::start().await;
    let proxy = FaultProxy::start(
        &registry.url,
        vec![(
            "acme/moved",
            Fault::Redirect {
                target: elsewhere.url.clone(),
            },
        )],
        Some((USER, SECRET)),
    )
    .await;
    let client = RegistryClient::new(
        vec![basic_settings(&proxy.host)],
        &Environment::from_pairs([(SECRET_ENV, SECRET)]),
    )
    .unwrap();
    // A healthy repository first: the client learns that this registry wants Basic credentials, so the
    // redirected requests below carry them.
    let healthy = image(&proxy.host, "acme/app");
    assert_eq!(client.list_tags(&healthy).await.unwrap().len(), 2);

    let moved = image(&proxy.host, "acme/moved");
    let errors = [
        client.list_tags(&moved).await.map(|_| ()).unwrap_err(),
        client
            .manifest_digest(&moved, "1.0.0")
            .await
            .map(|_| ())
            .unwrap_err(),
        client
            .created(&moved, "1.0.0")
            .await
            .map(|_| ())
            .unwrap_err(),
    ];
    for error in &errors {
        assert!(
            matches!(error, RegistryError::Unauthorized { .. }),
            "{error:?}"
        );
        assert_eq!(error.class(), ErrorClass::Permanent, "{error}");
        assert!(error.to_string().contains(&elsewhere.url), "{error}");
    }
    let seen = elsewhere.seen();
    assert!(!seen.is_empty(), "the redirects were followed");
    for request in &seen {
        assert!(
            !request.to_ascii_lowercase().contains("authorization:"),
            "{request}"
        );
        for form in credential_forms() {
            assert!(!request.contains(&form), "{request}");
        }
        assert!(
            !request.contains("/token"),
            "the challenge was answered: {request}"
        );
    }
    assert!(proxy.requests_for("acme/moved") <= 3 * MAX_REQUESTS_PER_CALL);
    // The foreign challenge did not replace the registry's own scheme: the healthy repository still
    // lists, with its credentials.
    assert_eq!(client.list_tags(&healthy).await.unwrap().len(), 2);
}

/// One hostile repository per fault, each an image of its own in one config repository, next to healthy
/// images on the same registries: `run --once` bumps the healthy ones, fails each hostile one alone with
/// its class, bounds the requests, and writes no registry text anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_fails_each_hostile_image_alone_and_bumps_the_others() {
    let registry = Registry::plain().await;
    // A TLS registry whose CA tagwatch is not given: its certificate cannot be verified.
    let untrusted = Registry::start(true, crate::support::registry::Auth::Anonymous).await;
    let untrusted_seeder = untrusted.seeder("acme/tls");
    for tag in ["1.0.0", "1.1.0"] {
        untrusted_seeder.push_image("acme/tls", tag, CREATED).await;
    }
    let elsewhere = Recorder::start().await;
    let injected_code = format!(
        r#"{{"errors":[{{"code":"UNAVAILABLE\nerror: repository local: {MARKER} \u001b[31m","message":"x"}}]}}"#
    );
    let long_tag = format!("1.9.9-{MARKER}{}", "a".repeat(10_000));
    let hostile_tags: Vec<String> = [
        format!("1.9.9\nimage: evil/{MARKER}:latest"),
        format!("1.9.9\" # {MARKER}"),
        format!("1.9.9' # {MARKER}"),
        format!("1.9.9 #{MARKER}"),
        format!("1.9.9: {MARKER}"),
        format!("1.9.9\r\n{MARKER}"),
        format!("1.9.9\u{1b}[31m{MARKER}"),
        long_tag,
    ]
    .into();
    // (repository, fault, outcome): `Some(class)` fails with that class, `None` is bumped to 1.1.0.
    let status = |status: u16, times: usize, retry_after: Option<&str>, body: &str| Fault::Status {
        status,
        times,
        retry_after: retry_after.map(str::to_string),
        body: body.to_string(),
    };
    let cases: Vec<(&str, Fault, Option<&str>)> = vec![
        ("acme/healthy", status(200, 0, None, ""), None),
        (
            "acme/truncated",
            Fault::TagsBody(r#"{"name":"acme/truncated","tags":["1.0.0","1.9"#.into()),
            Some("permanent"),
        ),
        (
            "acme/not-json",
            Fault::TagsBody(format!("<html>{MARKER}\n</html>")),
            Some("permanent"),
        ),
        (
            "acme/string-tags",
            Fault::TagsBody(format!(r#"{{"tags":"1.9.9\n{MARKER}"}}"#)),
            Some("permanent"),
        ),
        (
            "acme/number-tags",
            Fault::TagsBody(r#"{"tags":[1.9,true,{"a":"1.9.9"}]}"#.into()),
            Some("permanent"),
        ),
        ("acme/cut", Fault::CutBody, Some("transient")),
        (
            "acme/huge",
            Fault::ManyTags {
                count: 200_000,
                page: 1000,
            },
            Some("permanent"),
        ),
        ("acme/loop", Fault::LinkLoop, Some("permanent")),
        ("acme/repeat", Fault::RepeatedPage, Some("permanent")),
        ("acme/inject", Fault::InjectTags(hostile_tags.clone()), None),
        ("acme/burst-503", status(503, 3, None, "busy"), None),
        (
            "acme/down-500",
            status(500, usize::MAX, None, &injected_code),
            Some("transient"),
        ),
        ("acme/burst-429", status(429, 2, Some("1"), ""), None),
        (
            "acme/limit-429",
            status(429, usize::MAX, None, ""),
            Some("rate-limited"),
        ),
        (
            "acme/absurd-429",
            status(429, usize::MAX, Some("1000000000000"), ""),
            Some("rate-limited"),
        ),
        (
            "acme/overflow-429",
            status(429, usize::MAX, Some("99999999999999999999999"), ""),
            Some("rate-limited"),
        ),
        (
            "acme/future-429",
            status(429, usize::MAX, Some("Fri, 31 Dec 9999 23:59:59 GMT"), ""),
            Some("rate-limited"),
        ),
        (
            "acme/redirect",
            Fault::Redirect {
                target: elsewhere.url.clone(),
            },
            Some("permanent"),
        ),
    ];
    let seeder = registry.seeder("acme/app");
    for repository in ["acme/app"]
        .into_iter()
        .chain(cases.iter().map(|(repository, _, _)| *repository))
        .chain(["acme/hang", "acme/neighbour"])
    {
        for tag in ["1.0.0", "1.1.0"] {
            seeder.push_image(repository, tag, CREATED).await;
        }
    }
    let proxy = FaultProxy::start(
        &registry.url,
        cases
            .iter()
            .map(|(repository, fault, _)| (*repository, fault.clone()))
            .collect(),
        Some((USER, SECRET)),
    )
    .await;
    // A registry that accepts and never answers one repository, with a short request timeout.
    let hanging = FaultProxy::start(&registry.url, vec![("acme/hang", Fault::Hang)], None).await;

    // (policy, image): every image of the cycle, healthy or not.
    let mut images: Vec<(String, String, Option<&str>)> = vec![
        ("direct".into(), format!("{}/acme/app", registry.host), None),
        (
            "hang".into(),
            format!("{}/acme/hang", hanging.host),
            Some("transient"),
        ),
        (
            "neighbour".into(),
            format!("{}/acme/neighbour", hanging.host),
            None,
        ),
        (
            "tls".into(),
            format!("{}/acme/tls", untrusted.host),
            Some("permanent"),
        ),
    ];
    for (repository, _, outcome) in &cases {
        images.push((
            repository.trim_start_matches("acme/").to_string(),
            format!("{}/{repository}", proxy.host),
            *outcome,
        ));
    }
    let root = tempfile::tempdir().unwrap();
    let files: Vec<(String, String)> = images
        .iter()
        .map(|(policy, image, _)| {
            (
                format!("apps/{policy}.yaml"),
                compose(policy, image, "1.0.0"),
            )
        })
        .collect();
    let file_refs: Vec<(&str, String)> = files
        .iter()
        .map(|(file, content)| (file.as_str(), content.clone()))
        .collect();
    let bare = bare_repo(root.path(), "local", &file_refs);
    let policies: String = images
        .iter()
        .map(|(policy, image, _)| {
            format!(
                "---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: {policy} }}\nspec:\n  image: {image}\n  semver: {{ range: \"^1\" }}\n"
            )
        })
        .collect();
    let config = root.path().join("tagwatch.yaml");
    std::fs::create_dir_all(root.path().join("policies")).unwrap();
    std::fs::write(root.path().join("policies/all.yaml"), &policies).unwrap();
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {}\n    insecure: true\n  - host: {}\n    insecure: true\n    auth: {{ username: {USER}, passwordEnv: {SECRET_ENV} }}\n  - host: {}\n    insecure: true\n    timeout: 2s\nrepositories:\n{}policies: [policies/]\ndaemon: {{ stateDir: state }}\n",
            registry.host,
            proxy.host,
            hanging.host,
            push_repository("local", &file_url(&bare), ""),
        ),
    )
    .unwrap();

    // First run, text logs: the healthy images are bumped in one commit, each hostile one is reported.
    let output = tagwatch(&config, &["run", "--once"], &[(SECRET_ENV, SECRET)]);
    let stderr = text(&output.stderr);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for (policy, image, outcome) in &images {
        let file = format!("apps/{policy}.yaml");
        let expected = compose(
            policy,
            image,
            if outcome.is_none() { "1.1.0" } else { "1.0.0" },
        );
        assert_eq!(show(&bare, &file), expected, "{file}: {stderr}");
        if outcome.is_some() {
            assert!(
                stderr.contains(&format!("policy {policy}: ")),
                "{policy} is reported: {stderr}"
            );
        }
    }
    let tree = git_bare(&bare, &["ls-tree", "-r", "--name-only", "main"]);
    assert_eq!(
        tree.lines()
            .filter(|line| line.starts_with("apps/"))
            .count(),
        images.len(),
        "{tree}"
    );
    // Nothing the registries sent reaches the repository or the commit; the terminal sees it only
    // escaped, inside tagwatch's own lines (a forged `error:` line would start with the marker).
    let history = git_bare(&bare, &["log", "-p", "--format=%H%n%an%n%B", "main"]);
    assert!(!history.contains(MARKER), "{history}");
    assert!(!stdout.contains(MARKER), "{stdout}");
    for (name, bytes) in [
        ("history", &history),
        ("stdout", &stdout),
        ("stderr", &stderr),
    ] {
        assert!(!bytes.contains('\u{1b}'), "{name} holds an escape: {bytes}");
        for form in credential_forms() {
            assert!(!bytes.contains(&form), "{name} holds the secret");
        }
    }
    // (Text without a newline, quote or escape is the same raw or escaped: only its quoting shows it.)
    for raw in hostile_tags
        .iter()
        .chain([&injected_code])
        .filter(|raw| format!("{raw:?}") != format!("\"{raw}\""))
    {
        assert!(!stderr.contains(raw.as_str()), "{raw:?} raw in {stderr}");
    }
    for line in stderr.lines() {
        let log_event = chrono::DateTime::parse_from_rfc3339(line.split(' ').next().unwrap())
            .is_ok()
            && [" ERROR ", " WARN ", " INFO "]
                .iter()
                .any(|level| line[..40.min(line.len())].contains(level));
        let own = line.starts_with("error: repository local: policy ")
            || line.starts_with("hint: ")
            || log_event;
        assert!(
            own,
            "every stderr line is tagwatch's own: {line:?}\n{stderr}"
        );
        assert!(line.len() < 2_000, "a line of {} bytes: {line}", line.len());
    }
    for request in elsewhere.seen() {
        assert!(
            !request.to_ascii_lowercase().contains("authorization:"),
            "{request}"
        );
        for form in credential_forms() {
            assert!(!request.contains(&form), "{request}");
        }
    }
    let first = proxy.requests();
    assert_bounded(&first, &cases);
    // The figures of docs/reliability/registry.md (`--no-capture` shows them).
    let mut counts: Vec<_> = first.iter().collect();
    counts.sort();
    eprintln!("requests per repository in the first run: {counts:?}");
    eprintln!("hang: {}", hanging.requests_for("acme/hang"));

    // Second run, JSON logs: nothing left to bump; every hostile image fails again, with its class.
    let head = git_bare(&bare, &["rev-parse", "main"]);
    let output = tagwatch(
        &config,
        &["--log-format", "json", "run", "--once"],
        &[(SECRET_ENV, SECRET)],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(git_bare(&bare, &["rev-parse", "main"]), head);
    let mut classes = BTreeMap::new();
    for line in stderr.lines() {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not one JSON event per line ({error}): {line:?}"));
        let fields = &event["fields"];
        if fields["message"] == "failed" {
            let scope = fields["scope"].as_str().unwrap().to_string();
            classes.insert(scope, fields["class"].as_str().unwrap().to_string());
        }
    }
    let expected: BTreeMap<String, String> = images
        .iter()
        .filter_map(|(policy, _, outcome)| {
            Some((format!("policy {policy}"), (*outcome)?.to_string()))
        })
        .collect();
    assert_eq!(classes, expected, "{stderr}");
    let mut second = proxy.requests();
    for (repository, count) in &first {
        *second.get_mut(repository).unwrap() -= count;
    }
    assert_bounded(&second, &cases);
    assert!(hanging.requests_for("acme/hang") <= 2 * MAX_REQUESTS_PER_CALL);
}

/// A compose file with one service `policy` running `image:tag`.
fn compose(policy: &str, image: &str, tag: &str) -> String {
    format!("services:\n  {policy}:\n    image: {image}:{tag} # keep\n")
}

/// Requests per hostile repository in one run: the attempts of one call, or one request per page for
/// the paginated faults (a listing stops at `MAX_LISTING_TAGS`, at a page already read, or at a page
/// that repeats).
fn assert_bounded(
    requests: &std::collections::HashMap<String, usize>,
    cases: &[(&str, Fault, Option<&str>)],
) {
    for (repository, fault, _) in cases {
        let count = requests.get(*repository).copied().unwrap_or(0);
        let bound = match fault {
            Fault::ManyTags { page, .. } => {
                tagwatch::registry::pagination::MAX_LISTING_TAGS / page + MAX_REQUESTS_PER_CALL
            }
            Fault::LinkLoop | Fault::RepeatedPage => 3 + MAX_REQUESTS_PER_CALL,
            // A wait longer than a call may sleep (`backoff::DEFAULT_MAX_DELAY`) ends the call at once:
            // the one request, after the one that learnt the authentication scheme.
            Fault::Status {
                retry_after: Some(value),
                ..
            } if tagwatch::backoff::parse_retry_after(value)
                .is_some_and(|wait| wait > tagwatch::backoff::DEFAULT_MAX_DELAY) =>
            {
                2
            }
            // The listing, then the digest and `created` lookups of the chosen tag.
            _ => 3 * MAX_REQUESTS_PER_CALL,
        };
        assert!(count >= 1, "{repository} was asked");
        assert!(
            count <= bound,
            "{repository}: {count} requests, more than {bound}"
        );
    }
}
