//! `tagwatch plan` and `tagwatch run --once` end to end: a real registry (`docker-registry`), real git
//! remotes (`file://`, `git http-backend` over HTTP with Basic auth, `sshd`), and the fake forge for
//! pull requests. Remotes are always read back with the real `git` CLI.
//!
//! Topics: `plan` (output, nothing changed), `run_once` (push mode: the exact commit, no-op second run,
//! concurrent pusher, kill recovery, failing repositories), `holds` (rollbacks, windows),
//! `pull_request` (open, update, close on every forge).

mod controller;
mod holds;
mod merge;
mod plan;
mod promotion;
mod pull_request;
mod rollback;
mod run_once;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tagwatch::config::Config;
use tagwatch::environment::Environment;
use tagwatch::reconcile::Context;
use tagwatch::registry::RegistryClient;

use crate::support::git_http::{git_bare, human_commit, seed_bare_repo_in};
use crate::support::registry::Registry;

/// The image every test tracks, under the test registry's host.
pub const IMAGE: &str = "acme/app";
/// A fixed `created` for pushed images (minAge is not under test here).
pub const CREATED: &str = "2024-01-01T00:00:00Z";

/// A Deployment with one container of `HOST/acme/app:TAG` (plus an optional trailing comment).
pub fn deployment(host: &str, tag: &str, comment: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app # keep this comment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: \"{host}/{IMAGE}:{tag}\"{comment}\n"
    )
}

/// A TagPolicy `app` tracking `^1` of the test image, with extra `spec` lines.
pub fn policy(host: &str, extra: &str) -> String {
    format!(
        "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app }}\nspec:\n  image: {host}/{IMAGE}\n  semver: {{ range: \"^1\" }}\n{extra}"
    )
}

/// A registry with `acme/app` tagged each of `tags`.
pub async fn registry_with(tags: &[&str]) -> Registry {
    let registry = Registry::plain().await;
    push_tags(&registry, tags).await;
    registry
}

pub async fn push_tags(registry: &Registry, tags: &[&str]) {
    let seeder = registry.seeder(IMAGE);
    for tag in tags {
        seeder.push_image(IMAGE, tag, CREATED).await;
    }
}

/// Two images to bump: `acme/app` 1.0.0 → 1.2.0 (`apps/a.yaml`, policy `app`) and `acme/web`
/// 2.0.0 → 2.1.0 (`apps/web.yaml`, a compose file, policy `web`). Returns the registry, the bare
/// repository under `root`, and the policy documents.
pub async fn two_images(root: &Path) -> (Registry, PathBuf, String) {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let seeder = registry.seeder("acme/web");
    for tag in ["2.0.0", "2.1.0"] {
        seeder.push_image("acme/web", tag, CREATED).await;
    }
    let host = registry.host.clone();
    let bare = bare_repo(
        root,
        "local",
        &[
            ("apps/a.yaml", deployment(&host, "1.0.0", "")),
            (
                "apps/web.yaml",
                format!("services:\n  web:\n    image: {host}/acme/web:2.0.0\n"),
            ),
        ],
    );
    let policies = format!(
        "{}---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: web }}\nspec:\n  image: {host}/acme/web\n  semver: {{ range: \"^2\" }}\n",
        policy(&host, "")
    );
    (registry, bare, policies)
}

/// A bare repository under `directory` (the harness seed commit, then `files` committed by a human).
pub fn bare_repo(directory: &Path, name: &str, files: &[(&str, String)]) -> PathBuf {
    let bare = seed_bare_repo_in(directory, name);
    add_files(&bare, files);
    bare
}

pub fn add_files(bare: &Path, files: &[(&str, String)]) {
    for (file, content) in files {
        human_commit(bare, "main", file, content, &format!("add {file}"));
    }
}

pub fn file_url(bare: &Path) -> String {
    format!("file://{}", bare.display())
}

/// `git rev-parse main` on the bare repository.
pub fn head(bare: &Path) -> String {
    git_bare(bare, &["rev-parse", "main"]).trim().to_string()
}

/// `git show main:FILE` on the bare repository.
pub fn show(bare: &Path, file: &str) -> String {
    git_bare(bare, &["show", &format!("main:{file}")])
}

/// Writes `tagwatch.yaml` (registry marked insecure, state in `state/`) and `policies/app.yaml`.
pub fn write_config(
    directory: &Path,
    registry: &Registry,
    repositories: &str,
    policies: &str,
) -> PathBuf {
    write_config_for(directory, &registry.host, repositories, policies)
}

/// [`write_config`] for a registry at `host` (a proxy in front of the test registry).
pub fn write_config_for(
    directory: &Path,
    host: &str,
    repositories: &str,
    policies: &str,
) -> PathBuf {
    let config = directory.join("tagwatch.yaml");
    std::fs::create_dir_all(directory.join("policies")).unwrap();
    std::fs::write(directory.join("policies/app.yaml"), policies).unwrap();
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {host}\n    insecure: true\nrepositories:\n{repositories}policies: [policies/]\ndaemon: {{ stateDir: state }}\n"
        ),
    )
    .unwrap();
    config
}

/// A `repositories:` entry in push mode, scanning `apps/`.
pub fn push_repository(name: &str, url: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    url: {url}\n    paths: [apps]\n{extra}    writeBack: {{ mode: push, author: {{ name: tagwatch-bot, email: bot@example.com }}, message: \"chore(images): {{summary}}\\n\\n{{changes}}\" }}\n"
    )
}

/// `tagwatch --config CONFIG ARGS` with only `env`, plus PATH and a HOME of its own beside the config.
pub fn command(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let home = config.parent().unwrap().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagwatch"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied());
    command
}

/// Runs the binary with only the given environment (plus HOME).
pub fn tagwatch(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(config, args, env).output().unwrap()
}

/// Runs the binary with `TAGWATCH_FAULT_POINT=point`, waits until it says it reached the point, and
/// kills it with SIGKILL (`kill -9`).
pub fn killed_at(config: &Path, args: &[&str], env: &[(&str, &str)], point: &str) {
    use std::io::BufRead as _;
    let mut child = command(config, args, env)
        .env(tagwatch::fault::POINT_VARIABLE, point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let reached = line.contains(&format!("fault point {point} reached"));
        seen.push(line);
        if reached {
            // SIGKILL: no destructor, no flush, no unlock but the kernel's.
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
    }
    let status = child.wait().unwrap();
    panic!("{point} was never reached ({status}): {seen:#?}");
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The library's controller context for `config` (tests that need a hook between plan and push).
pub fn reconciler(config: &Path, env: &[(&str, &str)]) -> Context<RegistryClient> {
    let environment = Environment::from_pairs(env.iter().copied());
    let config = Config::load(Some(config), &environment).expect("valid config");
    let client = RegistryClient::new(config.registries.clone(), &environment).unwrap();
    Context::new(config, environment, client)
}
