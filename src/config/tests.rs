use std::path::Path;

use super::*;
use crate::policy::{Direction, Exclusion, Order, PolicyKind, select};

/// Loads `config` (and `policies/p.yaml` when given) from a temp directory.
fn load(config: &str, policy: Option<&str>, env: &[(&str, &str)]) -> Result<Config, Diagnostics> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tagwatch.yaml"), config).unwrap();
    if let Some(policy) = policy {
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/p.yaml"), policy).unwrap();
    }
    Config::load(
        Some(&dir.path().join("tagwatch.yaml")),
        &Environment::from_pairs(env.iter().copied()),
    )
}

const FLUX: &str = r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: { name: podinfo, namespace: flux-system }
spec:
  image: ghcr.io/stefanprodan/podinfo
  interval: 1m0s
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: { name: podinfo, namespace: flux-system }
spec:
  imageRepositoryRef: { name: podinfo }
  digestReflectionPolicy: IfNotPresent
  policy:
    semver: { range: ">=6.0.0, <6.5.0" }
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata: { name: builds, namespace: apps }
spec:
  imageRepositoryRef: { name: podinfo, namespace: flux-system }
  filterTags: { pattern: '^main-(?P<n>[0-9]+)$', extract: '$n' }
  policy: { numerical: { order: desc } }
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata: { name: ignored }
spec: { anything: goes }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: not-a-policy }
"#;

#[test]
fn flux_objects_become_policies_named_like_their_markers() {
    let config = load("policies: [policies]\n", Some(FLUX), &[]).unwrap();
    assert_eq!(config.policies.len(), 2);
    let podinfo = config.policy_by_marker("flux-system:podinfo").unwrap();
    assert_eq!(
        podinfo.kind,
        PolicyKind::FluxImagePolicy {
            namespace: "flux-system".to_string()
        }
    );
    assert_eq!(podinfo.image.name(), "ghcr.io/stefanprodan/podinfo");
    assert!(podinfo.digest, "IfNotPresent reflects digests");
    assert_eq!(podinfo.interval, Some(Duration::from_secs(60)));
    // Flux's default exclusionList drops signature tags; commas AND comparators like Masterminds.
    assert!(matches!(podinfo.exclude.as_slice(), [Exclusion::Regex(_)]));
    let tags: Vec<String> = ["6.4.9", "6.5.0", "sha256-abc.sig", "5.9.0"]
        .map(String::from)
        .to_vec();
    assert_eq!(select(podinfo, &tags).candidates, ["6.4.9"]);

    let builds = config.policy("apps:builds").unwrap();
    assert!(matches!(
        builds.order,
        Order::Numerical(Direction::Descending)
    ));
    // The bare name finds a Flux policy when only one namespace has it.
    assert_eq!(config.policy("builds").unwrap().name, "apps:builds");
    assert!(config.policy("not-a-policy").is_none());
}

#[test]
fn a_bare_name_shared_by_two_namespaces_is_ambiguous() {
    let policy = |namespace: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{ name: app, namespace: {namespace} }}\nspec:\n  imageRepositoryRef: {{ name: app, namespace: flux-system }}\n  policy: {{ alphabetical: {{}} }}\n---\n"
        )
    };
    let repository = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: { name: app }\nspec: { image: nginx }\n";
    let text = format!("{}{}{repository}", policy("a"), policy("b"));
    let config = load("policies: [policies]\n", Some(&text), &[]).unwrap();
    assert!(config.policy("a:app").is_some());
    assert!(config.policy("b:app").is_some());
    assert!(config.policy("app").is_none());
}

#[test]
fn anchors_and_aliases_are_followed() {
    let config = load(
        "registries:\n  - &local { host: \"127.0.0.1:5000\", insecure: true }\nrepositories:\n  - name: a\n    url: file:///srv/a.git\n    writeBack: &wb { mode: push, message: \"bump {image} to {to}\" }\n  - name: b\n    url: file:///srv/b.git\n    writeBack: *wb\n",
        None,
        &[],
    )
    .unwrap();
    assert!(config.registries[0].insecure);
    assert_eq!(
        config.repositories[1].write_back.message,
        "bump {image} to {to}"
    );
    assert_eq!(config.repositories[1].branch, DEFAULT_BRANCH);
}

#[test]
fn defaults_are_filled_in() {
    let config = load(
        "repositories:\n  - name: prod\n    url: git@github.com:acme/prod.git\n    writeBack: { mode: pull-request, forge: { kind: gitlab, repo: acme/prod, tokenEnv: GL } }\n",
        None,
        &[("GL", "token")],
    )
    .unwrap();
    let write_back = &config.repositories[0].write_back;
    assert_eq!(write_back.branch, DEFAULT_PULL_REQUEST_BRANCH);
    assert_eq!(write_back.message, DEFAULT_MESSAGE);
    assert_eq!(write_back.group, Grouping::Repository);
    let forge = write_back.forge.as_ref().unwrap();
    assert_eq!(forge.api, "https://gitlab.com/api/v4");
    assert_eq!(forge.kind, ForgeKind::GitLab);
    assert_eq!(config.daemon.interval, DEFAULT_INTERVAL);
    assert!(config.policies.is_empty());
}

#[test]
fn empty_config_file_is_an_empty_config() {
    let config = load("# nothing here yet\n", None, &[]).unwrap();
    assert!(config.registries.is_empty() && config.repositories.is_empty());
}

#[test]
fn diagnostics_print_file_line_column_field_and_message() {
    let diagnostic = Diagnostic {
        file: Path::new("policies/p.yaml").to_path_buf(),
        mark: Mark { line: 7, column: 3 },
        path: "spec.semver".to_string(),
        message: "expected a mapping".to_string(),
    };
    assert_eq!(
        diagnostic.to_string(),
        "policies/p.yaml:7:3: spec.semver: expected a mapping"
    );
}
