//! The reliability campaign (issue 13) for git remotes, forges, crashes and secrets: real remotes
//! (`git http-backend` behind lighttpd, `sshd`), server-side hooks that stall, refuse, run out of disk or
//! protect a branch, a TCP fault proxy, the validating fake forge, `kill -9` at every fault point, and a
//! sweep for secrets in everything tagwatch writes. Figures: `docs/reliability/*.md`.
//!
//! Topics: `remotes` (broken remotes, humans pushing during every phase), `forges` (5xx, rate limits,
//! 422), `crashes` (kill -9 at each fault point, then `run --once` or the daemon converges), `secrets`.

mod crashes;
mod forges;
mod remotes;
mod secrets;
mod tcp_fault;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::reconcile::{CREATED, IMAGE, deployment};
use crate::support::git_http::{GitHttpServer, git_bare, human_commit};
use crate::support::registry::Registry;

/// The Basic-auth user and password of every test remote.
pub const GIT_USER: &str = "bot";
pub const GIT_PASSWORD: &str = "remote-Pa55-7b1c";
/// The author of tagwatch's commits in these tests.
pub const BOT_EMAIL: &str = "bot@example.com";

/// The fault points of a push-mode write-back, in the order it meets them: `tagwatch::fault::POINTS`
/// up to and with `after-push` (so the two lists cannot drift apart); where a crash test kills the
/// process and where a human pushes in between.
pub fn push_points() -> &'static [&'static str] {
    let points = tagwatch::fault::POINTS;
    let end = points
        .iter()
        .position(|point| *point == "after-push")
        .expect("`after-push` is a fault point");
    &points[..=end]
}

/// The fault points of opening a pull request, in order.
pub const OPEN_POINTS: &[&str] = &[
    "blob-written",
    "commit-created",
    "push-started",
    "push-done",
    "before-pull-request",
    "pull-request-created",
];

/// A registry with `acme/app` 1.0.0 and 1.2.0 and `acme/web` 2.0.0 and 2.1.0.
pub async fn two_image_registry() -> Registry {
    let registry = Registry::plain().await;
    let seeder = registry.seeder(IMAGE);
    for tag in ["1.0.0", "1.2.0"] {
        seeder.push_image(IMAGE, tag, CREATED).await;
    }
    let seeder = registry.seeder("acme/web");
    for tag in ["2.0.0", "2.1.0"] {
        seeder.push_image("acme/web", tag, CREATED).await;
    }
    registry
}

/// `apps/web.yaml`, a compose file deploying `acme/web:TAG`.
pub fn web(host: &str, tag: &str) -> String {
    format!("services:\n  web:\n    image: {host}/acme/web:{tag}\n")
}

/// Policies `app` (`^1` of acme/app) and `web` (`^2` of acme/web).
pub fn two_policies(host: &str) -> String {
    format!(
        "{}---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: web }}\nspec:\n  image: {host}/acme/web\n  semver: {{ range: \"^2\" }}\n",
        crate::reconcile::policy(host, "")
    )
}

/// A `repositories:` entry over HTTP with Basic auth (password from `GIT_PASSWORD`), `extra` lines
/// after `paths` and the write-back `write_back` (a YAML flow mapping's inside).
pub fn http_entry(name: &str, url: &str, write_back: &str) -> String {
    format!(
        "  - name: {name}\n    url: {url}\n    paths: [apps]\n    auth: {{ username: {GIT_USER}, passwordEnv: GIT_PASSWORD }}\n    writeBack: {{ {write_back}author: {{ name: tagwatch-bot, email: {BOT_EMAIL} }} }}\n"
    )
}

/// The environment every run gets: the remote's password.
pub fn git_env() -> Vec<(&'static str, &'static str)> {
    vec![("GIT_PASSWORD", GIT_PASSWORD)]
}

/// Starts the HTTP git server of a test.
pub fn git_server() -> GitHttpServer {
    GitHttpServer::start(GIT_USER, GIT_PASSWORD)
}

/// Writes `hooks/NAME` of `bare` as an executable shell script.
pub fn install_hook(bare: &Path, name: &str, script: &str) {
    let hook = bare.join("hooks").join(name);
    std::fs::write(&hook, script).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// The branch protection of every remote here, as a `pre-receive` hook: an update of `main` that is
/// not a fast-forward (a force-push, a deletion) is refused and logged to `forced.log` next to the
/// repository; `extra` runs first (it may refuse on its own).
pub fn protect_main(bare: &Path, extra: &str) {
    let log = forced_log(bare);
    install_hook(
        bare,
        "pre-receive",
        &format!(
            "#!/bin/sh\n{extra}\nstatus=0\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/main ] && [ \"$old\" != 0000000000000000000000000000000000000000 ]; then\n    if [ \"$new\" = 0000000000000000000000000000000000000000 ] || ! git merge-base --is-ancestor \"$old\" \"$new\"; then\n      echo \"$old $new\" >> '{}'\n      echo 'protected branch main: force-push refused' >&2\n      status=1\n    fi\n  fi\ndone\nexit $status\n",
            log.display()
        ),
    );
}

/// Where [`protect_main`] logs refused force-pushes.
pub fn forced_log(bare: &Path) -> PathBuf {
    bare.with_extension("forced.log")
}

/// Force-pushes to `main` the protection refused (0 is the only right answer).
pub fn force_pushes(bare: &Path) -> usize {
    std::fs::read_to_string(forced_log(bare))
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

/// Commits on `branch` of `bare` (first parents and merged ones).
pub fn count(bare: &Path, branch: &str) -> usize {
    git_bare(bare, &["rev-list", "--count", branch])
        .trim()
        .parse()
        .unwrap()
}

/// Commits on `main` authored by tagwatch.
pub fn bot_commits(bare: &Path) -> usize {
    git_bare(bare, &["log", "--format=%ae", "main"])
        .lines()
        .filter(|email| *email == BOT_EMAIL)
        .count()
}

/// The tree id of `rev` (trees compare content: equal trees, equal files).
pub fn tree(bare: &Path, rev: &str) -> String {
    git_bare(bare, &["rev-parse", &format!("{rev}^{{tree}}")])
        .trim()
        .to_string()
}

/// Whether `commit` is in the history of `main`.
pub fn kept(bare: &Path, commit: &str) -> bool {
    Command::new("git")
        .args(["-c", "safe.directory=*", "--git-dir"])
        .arg(bare)
        .args(["merge-base", "--is-ancestor", commit, "main"])
        .status()
        .unwrap()
        .success()
}

/// A copy of the bare repository `template` as `NAME.git` beside it (same objects, same trees).
pub fn copy_repo(template: &Path, name: &str) -> PathBuf {
    let copy = template.with_file_name(format!("{name}.git"));
    let status = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    copy
}

/// A human's commit of `README.md` on `main` (a change tagwatch never touches).
pub fn human_readme(bare: &Path, text: &str) -> String {
    human_commit(bare, "main", "README.md", text, text.trim())
}

/// `tagwatch ARGS` with only `env` (plus HOME and PATH), `-vv` for debug logs.
pub fn tagwatch(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    crate::reconcile::tagwatch(config, args, env)
}

/// Fails the test unless `output` is a success; `label` names the case, the binary's stderr follows.
pub fn succeeded(output: &Output, label: &str) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{label}: {}",
        text(&output.stderr)
    );
}

/// `tagwatch run --once` with only `env`, which must succeed (see [`succeeded`]).
pub fn run_once_ok(config: &Path, env: &[(&str, &str)], label: &str) -> Output {
    let output = tagwatch(config, &["run", "--once"], env);
    succeeded(&output, label);
    output
}

/// Runs the binary with `TAGWATCH_FAULT_POINT=point` and `TAGWATCH_FAULT_RESUME`: when it reports the
/// point, `meanwhile` runs (a human's push), then the process goes on; returns its output. Fails the
/// test when the point is never reached.
pub fn paused_at(
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    point: &str,
    meanwhile: impl FnOnce(),
) -> Output {
    let resume = config.parent().unwrap().join(format!("resume-{point}"));
    let _ = std::fs::remove_file(&resume);
    let mut child = crate::reconcile::command(config, args, env)
        .env(tagwatch::fault::POINT_VARIABLE, point)
        .env(tagwatch::fault::RESUME_VARIABLE, &resume)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut BufReader::new(stdout), &mut bytes).unwrap();
        bytes
    });
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut meanwhile = Some(meanwhile);
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.contains(&format!("fault point {point} reached"))
            && let Some(act) = meanwhile.take()
        {
            act();
            std::fs::write(&resume, "").unwrap();
        }
        seen.extend_from_slice(line.as_bytes());
        line.clear();
    }
    let status = child.wait().unwrap();
    assert!(
        meanwhile.is_none(),
        "{point} was never reached ({status}): {}",
        String::from_utf8_lossy(&seen)
    );
    Output {
        status,
        stdout: reader.join().unwrap(),
        stderr: seen,
    }
}

/// `kill -9` at a fault point: the one helper of the reconcile tests.
pub use crate::reconcile::killed_at;

/// The problems `run --once --log-format json` reported: (repository, class, error) of each
/// `"failed"` line.
pub fn reported(output: &Output) -> Vec<(String, String, String)> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "failed")
        .map(|line| {
            let field = |name: &str| {
                line["fields"][name]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            (field("repository"), field("class"), field("error"))
        })
        .collect()
}

/// `text` as the bytes it is, for error messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A human's rolled-back bump: `apps/web.yaml` bumped by tagwatch 2.0.0 → 2.1.0 (`run --once` with only
/// web in the repository), then set back to 2.0.0 by a human, then `apps/a.yaml` (app 1.0.0) added.
/// From here an uninterrupted run bumps app to 1.2.0 and holds web on 2.0.0.
pub fn with_a_hold(bare: &Path, config: &Path, host: &str) {
    human_commit(
        bare,
        "main",
        "apps/web.yaml",
        &web(host, "2.0.0"),
        "add web",
    );
    let output = tagwatch(config, &["run", "--once"], &git_env());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        crate::reconcile::show(bare, "apps/web.yaml"),
        web(host, "2.1.0")
    );
    human_commit(
        bare,
        "main",
        "apps/web.yaml",
        &web(host, "2.0.0"),
        "roll back web: 2.1.0 breaks checkout",
    );
    human_commit(
        bare,
        "main",
        "apps/a.yaml",
        &deployment(host, "1.0.0", ""),
        "add app",
    );
}
