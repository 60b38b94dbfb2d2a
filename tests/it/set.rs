//! `tagwatch set` end to end: the real binary on files in a temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: web # the front\n          image: nginx:1.25.0\n        - name: side\n          image: 'ghcr.io/acme/side:1.0'\n";

fn tagwatch(directory: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .current_dir(directory)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn set_rewrites_files_and_a_second_run_changes_nothing() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::create_dir(directory.path().join("apps")).unwrap();
    let file = directory.path().join("apps/deployment.yaml");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::write(directory.path().join("README.md"), "image: nginx:1.0\n").unwrap();

    let first = tagwatch(directory.path(), &["set", "nginx=1.27.1"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(
        text(&first.stdout),
        "./apps/deployment.yaml:8: nginx:1.25.0 -> nginx:1.27.1\n\
         changed 1 reference(s) to docker.io/library/nginx in 1 file(s)\n"
    );
    let after = std::fs::read_to_string(&file).unwrap();
    assert_eq!(after, DEPLOYMENT.replace("nginx:1.25.0", "nginx:1.27.1"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "file mode kept");
    assert_eq!(
        std::fs::read_to_string(directory.path().join("README.md")).unwrap(),
        "image: nginx:1.0\n",
        "non-YAML files under a directory are not touched"
    );
    let leftovers: Vec<_> = std::fs::read_dir(directory.path().join("apps"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    let second = tagwatch(directory.path(), &["set", "nginx=1.27.1", "apps"]);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(
        text(&second.stdout),
        "changed 0 reference(s) to docker.io/library/nginx in 0 file(s)\n"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), after);
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        modified,
        "not rewritten"
    );
}

#[test]
fn set_dry_run_prints_a_unified_diff_and_writes_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("deployment.yaml");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    let output = tagwatch(
        directory.path(),
        &[
            "set",
            "ghcr.io/acme/side=ghcr.io/acme/side:2.0",
            "deployment.yaml",
            "--dry-run",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    insta::assert_snapshot!(text(&output.stdout));
    assert!(text(&output.stderr).contains("would change 1 reference(s)"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), DEPLOYMENT);
}

#[test]
fn set_malformed_argument_exits_2() {
    let directory = tempfile::tempdir().unwrap();
    for assignment in [
        "nginx",
        "nginx=",
        "nginx=1.0!",
        "Nginx=1.0",
        "nginx=@sha256:12",
    ] {
        let output = tagwatch(directory.path(), &["set", assignment]);
        assert_eq!(output.status.code(), Some(2), "{assignment}");
        assert!(text(&output.stderr).starts_with("error: "), "{assignment}");
    }
    let output = tagwatch(directory.path(), &["set", "nginx=1.0", "missing-dir"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn set_exits_1_when_a_file_cannot_be_written_and_leaves_it_whole() {
    let directory = tempfile::tempdir().unwrap();
    // The temporary file beside it gets a name longer than any file system allows, so the write fails
    // before the original is touched (and this works as root, unlike a read-only directory).
    let long_name = format!("{}.yaml", "d".repeat(240));
    let file = directory.path().join(&long_name);
    std::fs::write(&file, DEPLOYMENT).unwrap();
    let other = directory.path().join("other.yaml");
    std::fs::write(&other, DEPLOYMENT).unwrap();

    let output = tagwatch(directory.path(), &["set", "nginx=1.27.1"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("cannot write"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        DEPLOYMENT,
        "left whole"
    );
    assert!(
        std::fs::read_to_string(&other)
            .unwrap()
            .contains("nginx:1.27.1")
    );
    let names: Vec<String> = std::fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
}

#[test]
fn set_skips_templates_and_unparsable_files_with_a_warning() {
    let directory = tempfile::tempdir().unwrap();
    let template = "image: nginx:{{ .Values.tag }}\n";
    let broken = "containers:\n  - image: nginx:1.0\n   bad: [\n";
    std::fs::write(directory.path().join("template.yaml"), template).unwrap();
    std::fs::write(directory.path().join("broken.yaml"), broken).unwrap();
    std::fs::write(directory.path().join("notes.txt"), "image: nginx:1.0\n").unwrap();
    std::fs::write(directory.path().join("deployment.yaml"), DEPLOYMENT).unwrap();
    let output = tagwatch(directory.path(), &["set", "nginx=1.27.1", ".", "notes.txt"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("notes.txt: not a .yaml/.yml file, skipped"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(directory.path().join("notes.txt")).unwrap(),
        "image: nginx:1.0\n"
    );
    assert!(stderr.contains("template.yaml: contains `{{`"), "{stderr}");
    assert!(stderr.contains("broken.yaml: not valid YAML"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(directory.path().join("template.yaml")).unwrap(),
        template
    );
    assert_eq!(
        std::fs::read_to_string(directory.path().join("broken.yaml")).unwrap(),
        broken
    );
}

#[test]
fn set_reports_requoting_holds_and_unbumpable_targets() {
    let directory = tempfile::tempdir().unwrap();
    let values = "image:\n  repository: quay.io/acme/exporter\n  tag: 1.9\nheld:\n  image: quay.io/acme/exporter:1.9 # tagwatch: hold\n";
    std::fs::write(directory.path().join("values.yaml"), values).unwrap();
    let output = tagwatch(directory.path(), &["set", "quay.io/acme/exporter=1.10"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("values.yaml:2: quoted the new value"),
        "{stderr}"
    );
    assert!(
        stderr.contains("values.yaml:5: `quay.io/acme/exporter:1.9` is held"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(directory.path().join("values.yaml")).unwrap(),
        values.replace("tag: 1.9", "tag: \"1.10\"")
    );

    let kustomization = "images:\n  - name: nginx\n    newName: ghcr.io/mirror/nginx\n";
    std::fs::write(directory.path().join("kustomization.yaml"), kustomization).unwrap();
    let output = tagwatch(
        directory.path(),
        &["set", "ghcr.io/mirror/nginx=1.2", "kustomization.yaml"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("no `newTag` field"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        text(&output.stderr).contains(
            "error: kustomization.yaml: left unchanged: 1 reference(s) could not be bumped (a file is written whole or not at all)"
        ),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(directory.path().join("kustomization.yaml")).unwrap(),
        kustomization
    );
}

#[test]
fn set_through_a_symlink_rewrites_the_target_and_keeps_the_link() {
    let directory = tempfile::tempdir().unwrap();
    let real = directory.path().join("real.yaml");
    std::fs::write(&real, DEPLOYMENT).unwrap();
    let link = directory.path().join("link.yaml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let output = tagwatch(directory.path(), &["set", "nginx=1.27.1", "link.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .contains("nginx:1.27.1")
    );
}

#[test]
fn set_matching_no_reference_exits_1_and_says_so() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("deployment.yaml");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    for args in [
        &["set", "redis=7.2"][..],
        &["set", "redis=7.2", "deployment.yaml", "--dry-run"][..],
    ] {
        let output = tagwatch(directory.path(), args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&output.stdout), "", "{args:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("error: no reference to docker.io/library/redis under ")
                && stderr.contains("(1 YAML file(s) read); nothing changed"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), DEPLOYMENT);

    let empty = tempfile::tempdir().unwrap();
    let output = tagwatch(empty.path(), &["set", "nginx=1.27.1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr)
            .contains("no reference to docker.io/library/nginx under . (0 YAML file(s) read)"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn set_leaves_a_file_with_one_unbumpable_reference_unchanged_and_says_so() {
    let directory = tempfile::tempdir().unwrap();
    // Line 4 can be bumped; the Helm map at line 6 has no `tag` key to write into.
    let mixed = "containers:\n  - name: exporter\n    image: quay.io/acme/exporter:1.0\nsidecar:\n  image:\n    repository: quay.io/acme/exporter\n";
    std::fs::write(directory.path().join("mixed.yaml"), mixed).unwrap();
    let clean = "containers:\n  - image: quay.io/acme/exporter:1.0\n";
    std::fs::write(directory.path().join("clean.yaml"), clean).unwrap();

    let output = tagwatch(directory.path(), &["set", "quay.io/acme/exporter=1.1"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr
            .contains("error: ./mixed.yaml:6: cannot bump `quay.io/acme/exporter`: no `tag` field"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "error: ./mixed.yaml: left unchanged: 1 reference(s) could not be bumped; its 1 other bumpable reference(s) were not written either (a file is written whole or not at all)"
        ),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(directory.path().join("mixed.yaml")).unwrap(),
        mixed,
        "not one byte of the file with the bad reference is written"
    );
    assert_eq!(
        std::fs::read_to_string(directory.path().join("clean.yaml")).unwrap(),
        clean.replace(":1.0", ":1.1"),
        "other files are still bumped"
    );
    assert_eq!(
        text(&output.stdout),
        "./clean.yaml:2: quay.io/acme/exporter:1.0 -> quay.io/acme/exporter:1.1\n\
         changed 1 reference(s) to quay.io/acme/exporter in 1 file(s)\n"
    );
}

#[test]
fn set_reports_a_tag_shared_through_a_merge_key_at_file_and_line() {
    let directory = tempfile::tempdir().unwrap();
    let values = "base: &base { repository: ghcr.io/acme/api, tag: \"1.0.0\" }\nworker:\n  <<: *base\n  repository: ghcr.io/acme/worker\n";
    std::fs::write(directory.path().join("values.yaml"), values).unwrap();
    let output = tagwatch(
        directory.path(),
        &["set", "ghcr.io/acme/worker=1.1.0", "values.yaml"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("warning: values.yaml:3: worker: its tag (line 1) is merged with `<<`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: values.yaml:4: cannot bump `ghcr.io/acme/worker:1.0.0`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: values.yaml: left unchanged"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(directory.path().join("values.yaml")).unwrap(),
        values
    );
}
