//! Every vendor fixture (tests/fixtures/webhooks) parses to its documented events.

use super::*;

/// Each fixture (see tests/fixtures/webhooks/README.md for its source), the content type its sender
/// uses, and the events it must produce.
fn fixture_table() -> Vec<(&'static str, Endpoint, &'static str, Vec<Event>)> {
    use Endpoint::*;
    vec![
        (
            "distribution/registry-2.8-push-tagged-manifest.json",
            Distribution,
            DISTRIBUTION_V1,
            vec![event("127.0.0.1:38745/acme/app", Some("1.2.3"))],
        ),
        (
            "distribution/registry-2.8-push-blob.json",
            Distribution,
            DISTRIBUTION_V1,
            vec![],
        ),
        (
            "distribution/registry-2.8-pull-manifest.json",
            Distribution,
            DISTRIBUTION_V1,
            vec![],
        ),
        (
            "distribution/registry-2.8-delete-manifest.json",
            Distribution,
            DISTRIBUTION_V1,
            vec![],
        ),
        (
            "distribution/registry-2.8-delete-tag.json",
            Distribution,
            DISTRIBUTION_V1,
            vec![],
        ),
        (
            "distribution/docs-pull-manifest.json",
            Distribution,
            DISTRIBUTION_V2,
            vec![],
        ),
        (
            "distribution/docs-envelope-v2-untagged-manifest-and-layers.json",
            Distribution,
            DISTRIBUTION_V2,
            vec![],
        ),
        (
            "dockerhub/docs-push.json",
            DockerHub,
            JSON,
            vec![event("docker.io/svendowideit/testhook", Some("latest"))],
        ),
        (
            "github/package-published-container.json",
            GitHub,
            JSON,
            vec![event("ghcr.io/theryangeary/www", Some("0e2a89b"))],
        ),
        (
            "github/registry_package-published-container.json",
            GitHub,
            JSON,
            vec![event("ghcr.io/theryangeary/www", Some("0e2a89b"))],
        ),
        (
            "github/octokit-package-published-npm.json",
            GitHub,
            JSON,
            vec![],
        ),
        (
            "github/octokit-package-published-docker.json",
            GitHub,
            JSON,
            vec![],
        ),
        (
            "github/octokit-registry_package-published-docker.json",
            GitHub,
            JSON,
            vec![],
        ),
        ("github/octokit-ping.json", GitHub, JSON, vec![]),
        (
            "harbor/captured-push-artifact.json",
            Harbor,
            JSON,
            vec![event("hb.nicolas.my.id/library/rumput", Some("v1"))],
        ),
        (
            "harbor/docs-push-artifact-tagged.json",
            Harbor,
            JSON,
            vec![event("hub.harbor.com/test-webhook/debian", Some("latest"))],
        ),
        (
            "harbor/docs-push-artifact-by-digest.json",
            Harbor,
            JSON,
            vec![],
        ),
        (
            "harbor/docs-cloudevents-push-artifact-by-digest.json",
            Harbor,
            JSON,
            vec![],
        ),
        (
            "harbor/docs-cloudevents-delete-artifact.json",
            Harbor,
            JSON,
            vec![],
        ),
        ("harbor/docs-delete-artifact.json", Harbor, JSON, vec![]),
        ("harbor/docs-pull-artifact.json", Harbor, JSON, vec![]),
        ("harbor/docs-scanning-completed.json", Harbor, JSON, vec![]),
        (
            "quay/docs-repo-push.json",
            Quay,
            JSON,
            vec![event("quay.io/dgangaia/test", Some("latest"))],
        ),
        (
            "quay/docs-2.9-repo-push.json",
            Quay,
            JSON,
            vec![event("quay.io/mynamespace/repository", Some("latest"))],
        ),
        (
            "quay/gist-2013-repo-push-tag-map.json",
            Quay,
            JSON,
            vec![event("quay.io/devtable/ubuntu", Some("latest"))],
        ),
        ("quay/docs-2.9-build-queued.json", Quay, JSON, vec![]),
        (
            "acr/docs-push.json",
            Acr,
            JSON,
            vec![event("myregistry.azurecr.io/hello-world", Some("v1"))],
        ),
        ("acr/docs-chart-push.json", Acr, JSON, vec![]),
        ("acr/docs-delete.json", Acr, JSON, vec![]),
        ("acr/docs-chart-delete.json", Acr, JSON, vec![]),
        (
            "generic/spec-example.json",
            Generic,
            JSON,
            vec![event("docker.io/host/repo", Some("1.2.3"))],
        ),
        (
            "generic/image-only.json",
            Generic,
            JSON,
            vec![event("127.0.0.1:5000/acme/app", None)],
        ),
    ]
}

#[test]
fn every_fixture_parses_to_its_documented_events() {
    for (path, endpoint, content_type, expected) in fixture_table() {
        let parsed = parse_detailed(endpoint, Some(content_type), &fixture(path))
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        assert_eq!(parsed.events, expected, "{path}");
        // Real payloads are never invalid: what yields no event is skipped, not rejected.
        assert_eq!(parsed.rejected, 0, "{path}");
        assert!(parsed.ignored > 0 || !expected.is_empty(), "{path}");
    }
}

#[test]
fn every_fixture_file_is_in_the_table() {
    let listed: Vec<&str> = fixture_table().iter().map(|(path, ..)| *path).collect();
    let mut files = Vec::new();
    for endpoint in Endpoint::ALL {
        let directory = fixtures_dir().join(endpoint.name());
        for entry in std::fs::read_dir(&directory).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            files.push(format!("{}/{name}", endpoint.name()));
        }
    }
    files.sort();
    let mut listed_sorted: Vec<String> = listed.iter().map(|path| path.to_string()).collect();
    listed_sorted.sort();
    assert_eq!(files, listed_sorted);
    let readme = String::from_utf8(fixture("README.md")).unwrap();
    for path in listed {
        assert!(
            readme.contains(path),
            "README.md lists no source for {path}"
        );
    }
}

#[test]
fn a_fixture_sent_to_another_endpoint_yields_nothing_or_an_error() {
    // The formats do not overlap: a payload at the wrong endpoint never names an image.
    for (path, endpoint, content_type, _) in fixture_table() {
        for other in Endpoint::ALL.into_iter().filter(|other| *other != endpoint) {
            let result = parse(other, Some(content_type), &fixture(path));
            assert!(
                result.as_ref().is_ok_and(Vec::is_empty) || result.is_err(),
                "{path} at {other}: {result:?}"
            );
        }
    }
}
