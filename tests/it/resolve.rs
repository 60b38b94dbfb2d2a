//! `tagwatch resolve` end to end through the binary, offline (`--tags-file`): output formats, exit codes,
//! `--verbose` reasons, and tags that try to inject text.

use std::path::Path;
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tagwatch(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("REG_PASSWORD", "x")
        .env("GIT_TOKEN", "x")
        .env("GH_TOKEN", "x")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn unknown_policy_exits_2_and_lists_the_known_names() {
    let output = tagwatch(
        &["--config", "deploy/tagwatch.yaml", "resolve", "podinfoo"],
        root(),
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "error: unknown policy \"podinfoo\"; known policies: api-main, bitnami-redis, flux-system:podinfo-flux, nginx-alpine, podinfo\n"
    );
}

#[test]
fn json_output_names_policy_image_tag_and_reference() {
    let output = tagwatch(
        &[
            "--config",
            "deploy/tagwatch.yaml",
            "resolve",
            "flux-system:podinfo-flux",
            "--tags-file",
            "tests/tags/ghcr.io__stefanprodan__podinfo.txt",
            "--output",
            "json",
        ],
        root(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let tag = value["tag"].as_str().unwrap();
    assert!(tag.starts_with("6."), "{value}");
    assert_eq!(value["policy"], "flux-system:podinfo-flux");
    assert_eq!(value["image"], "ghcr.io/stefanprodan/podinfo");
    assert_eq!(value["digest"], serde_json::Value::Null);
    assert_eq!(value["ref"], format!("ghcr.io/stefanprodan/podinfo:{tag}"));
}

#[test]
fn offline_resolve_says_what_a_tag_list_cannot_check() {
    let output = tagwatch(
        &[
            "--config",
            "deploy/tagwatch.yaml",
            "resolve",
            "nginx-alpine",
            "--tags-file",
            "tests/tags/nginx.txt",
        ],
        root(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.trim_end().ends_with("-alpine"), "{stdout}");
    assert!(text(&output.stderr).contains("the digest is not resolved from a tag list"));
}

#[test]
fn no_qualifying_tag_exits_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: pg }\nspec:\n  image: postgres\n  semver: { range: ^16 }\n",
    )
    .unwrap();
    let tags = root().join("tests/tags/postgres.txt");
    let output = tagwatch(
        &[
            "resolve",
            "policy.yaml",
            "--tags-file",
            tags.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("error: no tag qualifies for policy pg: 1423 tags: "),
        "{stderr}"
    );
    assert!(stderr.contains("are not semver"), "{stderr}");
}

#[test]
fn injected_tags_never_reach_stdout_and_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: { name: app }\nspec:\n  image: registry.example/app\n  semver: { range: \"*\" }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tags.txt"),
        "1.0.0\n9.9.9\"}\x1b[31m\n9.9.9 # injected\n",
    )
    .unwrap();
    let output = tagwatch(
        &["-v", "resolve", "policy.yaml", "--tags-file", "tags.txt"],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output.stdout), "1.0.0\n");
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("9.9.9\"}\x1b[31m"),
        "the raw tag never reaches the terminal: {stderr:?}"
    );
    assert!(
        stderr.contains(r#"rejected "9.9.9\"}\u{1b}[31m": breaks the OCI tag grammar"#),
        "{stderr}"
    );
    assert!(stderr.contains(r#"rejected "9.9.9 # injected": breaks the OCI tag grammar"#));
}
