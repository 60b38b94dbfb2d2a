//! `kill -9` at every fault point of a write-back, then a restart (`run --once`, or the daemon): the
//! remote ends exactly as after an uninterrupted run (same tree, same number of commits; in
//! pull-request mode the same head-branch tree and one pull request with the same title and body), no
//! duplicate, the rolled-back field stays held, and the state store opens.
//!
//! Every scenario starts from a copy of one template repository (same objects, same trees): tagwatch
//! bumped `web` 2.0.0 → 2.1.0, a human rolled it back (a hold), then added `apps/a.yaml` (app 1.0.0).
//! An uninterrupted run bumps app to 1.2.0 and leaves web on 2.0.0.

use std::path::{Path, PathBuf};

use super::*;
use crate::reconcile::{deployment, push_tags, show};
use crate::support::daemon::{Daemon, daemon_block};
use crate::support::fake_forge::{FakeForge, Flavor, NAME, OWNER, PullState};
use crate::support::git_http::GitHttpServer;
use crate::support::ports::free_port;

const FORGE_TOKEN: &str = "forge-token-cr45h";
const HEAD_BRANCH: &str = "tagwatch/local";

/// The points of updating a pull request to a newer tag, in order.
const UPDATE_POINTS: &[&str] = &[
    "blob-written",
    "commit-created",
    "push-started",
    "push-done",
    "before-pull-request",
    "pull-request-updated",
];

/// Writes `tagwatch.yaml` for `repositories` (state in `state/`, a daemon block when `listen` is set)
/// and the app and web policies (`range` for app).
fn config(
    root: &Path,
    host: &str,
    repositories: &str,
    range: &str,
    listen: Option<&str>,
) -> PathBuf {
    std::fs::create_dir_all(root.join("policies")).unwrap();
    std::fs::write(
        root.join("policies/app.yaml"),
        two_policies(host).replace("range: \"^1\"", &format!("range: \"{range}\"")),
    )
    .unwrap();
    let daemon = match listen {
        Some(address) => daemon_block(address, ""),
        None => "daemon: { stateDir: state }\n".to_string(),
    };
    let config = root.join("tagwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {host}\n    insecure: true\nrepositories:\n{repositories}policies: [policies/]\n{daemon}"
        ),
    )
    .unwrap();
    config
}

fn pull_request_entry(url: &str, api: &str) -> String {
    format!(
        "  - name: local\n    url: {url}\n    paths: [apps]\n    auth: {{ username: {GIT_USER}, passwordEnv: GIT_PASSWORD }}\n    writeBack:\n      mode: pull-request\n      branch: tagwatch/{{group}}\n      author: {{ name: tagwatch-bot, email: {BOT_EMAIL} }}\n      forge: {{ kind: github, api: \"{api}\", repo: {OWNER}/{NAME}, tokenEnv: FORGE_TOKEN }}\n"
    )
}

/// The template every scenario copies: the seed, web bumped by tagwatch and rolled back by a human,
/// app added at 1.0.0; protected against force-pushes to `main`.
async fn template(server: &GitHttpServer, host: &str) -> PathBuf {
    let root = tempfile::tempdir().unwrap();
    let bare = server.create_repo("template");
    let config = config(
        root.path(),
        host,
        &http_entry("local", &server.url("template"), "mode: push, "),
        "^1",
        None,
    );
    with_a_hold(&bare, &config, host);
    protect_main(&bare, "");
    bare
}

/// What the remote looks like: main's tree and commit count, the head branch's tree and commit count
/// when there is one.
#[derive(Debug, PartialEq, Eq)]
struct Remote {
    main: (String, usize),
    head: Option<(String, usize)>,
}

fn remote(bare: &Path) -> Remote {
    let has_head = !git_bare(bare, &["branch", "--list", HEAD_BRANCH])
        .trim()
        .is_empty();
    Remote {
        main: (tree(bare, "main"), count(bare, "main")),
        head: has_head.then(|| (tree(bare, HEAD_BRANCH), count(bare, HEAD_BRANCH))),
    }
}

/// Push mode: `kill -9` at each point, then `run --once` twice; and the same with the daemon restarted
/// instead. Each ends as the uninterrupted run ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_every_push_point_then_a_restart_ends_as_an_uninterrupted_run() {
    let registry = two_image_registry().await;
    let host = registry.host.clone();
    let server = git_server();
    let template = template(&server, &host).await;
    let entry = |name: &str| http_entry("local", &server.url(name), "mode: push, ");

    let reference = copy_repo(&template, "reference");
    let root = tempfile::tempdir().unwrap();
    let config_path = config(root.path(), &host, &entry("reference"), "^1", None);
    let output = tagwatch(&config_path, &["run", "--once"], &git_env());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let expected = remote(&reference);
    assert_eq!(
        show(&reference, "apps/a.yaml"),
        deployment(&host, "1.2.0", "")
    );
    assert_eq!(show(&reference, "apps/web.yaml"), web(&host, "2.0.0"));
    let bot = bot_commits(&reference);

    for (index, point) in push_points().iter().enumerate() {
        // Restarted with run --once.
        let name = format!("once-{index}");
        let bare = copy_repo(&template, &name);
        let root = tempfile::tempdir().unwrap();
        let config_path = config(root.path(), &host, &entry(&name), "^1", None);
        killed_at(&config_path, &["run", "--once"], &git_env(), point);
        run_once_ok(&config_path, &git_env(), point);
        assert_eq!(remote(&bare), expected, "{point}: run --once after kill -9");
        assert_eq!(bot_commits(&bare), bot, "{point}");
        assert_eq!(force_pushes(&bare), 0, "{point}");
        run_once_ok(&config_path, &git_env(), point);
        assert_eq!(
            remote(&bare),
            expected,
            "{point}: a second run changed the remote"
        );

        // Restarted as the daemon.
        let name = format!("daemon-{index}");
        let bare = copy_repo(&template, &name);
        let root = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let config_path = config(root.path(), &host, &entry(&name), "^1", Some(&address));
        let mut faulty = git_env();
        faulty.push((tagwatch::fault::POINT_VARIABLE, point));
        let daemon = Daemon::start(&config_path, &address, &faulty).await;
        daemon
            .until("the fault point", async || {
                daemon.logged(&format!("fault point {point} reached"))
            })
            .await;
        daemon.signal("KILL");
        drop(daemon);
        let daemon = Daemon::start(&config_path, &address, &git_env()).await;
        daemon.ready().await;
        assert_eq!(remote(&bare), expected, "{point}: daemon after kill -9");
        assert_eq!(bot_commits(&bare), bot, "{point}");
        assert_eq!(force_pushes(&bare), 0, "{point}");
        drop(daemon);
    }
}

/// The daemon killed right after it saved its status report, and again while saving is the only thing
/// left to do: the state store opens, `status` reads it, and a restart is ready with nothing to write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_the_state_is_saved_leaves_a_store_that_opens() {
    let registry = two_image_registry().await;
    let host = registry.host.clone();
    let server = git_server();
    let template = template(&server, &host).await;
    let bare = copy_repo(&template, "state");
    let root = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let config_path = config(
        root.path(),
        &host,
        &http_entry("local", &server.url("state"), "mode: push, "),
        "^1",
        Some(&address),
    );
    let mut faulty = git_env();
    faulty.push((tagwatch::fault::POINT_VARIABLE, "state-saved"));
    for _ in 0..2 {
        let daemon = Daemon::start(&config_path, &address, &faulty).await;
        daemon
            .until("the state saved", async || {
                daemon.logged("fault point state-saved reached")
            })
            .await;
        daemon.signal("KILL");
        drop(daemon);
        let output = tagwatch(&config_path, &["status", "--output", "json"], &git_env());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert!(report["targets"].is_array(), "{report}");
    }
    let after = remote(&bare);
    let daemon = Daemon::start(&config_path, &address, &git_env()).await;
    daemon.ready().await;
    assert_eq!(remote(&bare), after);
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
    assert_eq!(show(&bare, "apps/web.yaml"), web(&host, "2.0.0"));
    assert_eq!(bot_commits(&bare), 2);
}

/// One pull-request scenario: a copy of the template, its own fake forge and config.
struct PullScenario {
    bare: PathBuf,
    fake: FakeForge,
    config: PathBuf,
    _root: tempfile::TempDir,
}

impl PullScenario {
    async fn new(server: &GitHttpServer, template: &Path, host: &str, name: &str) -> Self {
        let bare = copy_repo(template, name);
        let fake = FakeForge::start(Flavor::GitHub, &bare, FORGE_TOKEN).await;
        let root = tempfile::tempdir().unwrap();
        let config = config(
            root.path(),
            host,
            &pull_request_entry(&server.url(name), &fake.api_url()),
            "~1.2",
            None,
        );
        PullScenario {
            bare,
            fake,
            config,
            _root: root,
        }
    }

    fn env() -> Vec<(&'static str, &'static str)> {
        let mut env = git_env();
        env.push(("FORGE_TOKEN", FORGE_TOKEN));
        env
    }

    fn run(&self) {
        let output = tagwatch(&self.config, &["run", "--once"], &Self::env());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }

    fn kill_at(&self, point: &str) {
        killed_at(&self.config, &["run", "--once"], &Self::env(), point);
    }

    /// Lets the app policy take any `^1` tag (1.3.0 now).
    fn widen(&self) {
        let policies = self.config.with_file_name("policies/app.yaml");
        let text = std::fs::read_to_string(&policies).unwrap();
        std::fs::write(&policies, text.replace("~1.2", "^1")).unwrap();
    }

    /// The forge's pull requests: (number, state, title, body, comments).
    fn pulls(&self) -> Vec<(u64, PullState, String, String, usize)> {
        self.fake
            .pulls()
            .into_iter()
            .map(|p| (p.number, p.state, p.title, p.body, p.comments.len()))
            .collect()
    }
}

/// Pull-request mode: `kill -9` at each point of opening the pull request, of updating it to a newer
/// tag, and between its closing comment and its closing; then `run --once`. The remote (main untouched,
/// the head branch's tree and commits) and the forge (one pull request, same title and body, one
/// closing comment) end as after uninterrupted runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_every_pull_request_point_then_run_once_ends_as_an_uninterrupted_run() {
    let registry = two_image_registry().await;
    push_tags(&registry, &["1.3.0"]).await;
    let host = registry.host.clone();
    let server = git_server();
    let template = template(&server, &host).await;
    let main = (tree(&template, "main"), count(&template, "main"));

    let reference = PullScenario::new(&server, &template, &host, "pr-reference").await;
    reference.run();
    let opened = (remote(&reference.bare), reference.pulls());
    assert_eq!(opened.1.len(), 1);
    assert_eq!(opened.0.main, main, "pull-request mode wrote to main");
    assert_eq!(
        git_bare(
            &reference.bare,
            &["show", &format!("{HEAD_BRANCH}:apps/web.yaml")]
        ),
        web(&host, "2.0.0"),
        "the hold was lost"
    );
    reference.widen();
    reference.run();
    let updated = (remote(&reference.bare), reference.pulls());
    assert_ne!(updated, opened);

    for (index, point) in OPEN_POINTS.iter().enumerate() {
        let scenario =
            PullScenario::new(&server, &template, &host, &format!("pr-open-{index}")).await;
        scenario.kill_at(point);
        scenario.run();
        assert_eq!(
            (remote(&scenario.bare), scenario.pulls()),
            opened,
            "{point}: opening"
        );
        scenario.run();
        assert_eq!(
            (remote(&scenario.bare), scenario.pulls()),
            opened,
            "{point}: a second run"
        );
        assert_eq!(force_pushes(&scenario.bare), 0);
        scenario.fake.assert_clean();
    }
    for (index, point) in UPDATE_POINTS.iter().enumerate() {
        let scenario =
            PullScenario::new(&server, &template, &host, &format!("pr-update-{index}")).await;
        scenario.run();
        scenario.widen();
        scenario.kill_at(point);
        scenario.run();
        assert_eq!(
            (remote(&scenario.bare), scenario.pulls()),
            updated,
            "{point}: updating"
        );
        assert_eq!(force_pushes(&scenario.bare), 0);
        scenario.fake.assert_clean();
    }

    // Closing: a human makes the change on main; the closing comment is posted, then the kill.
    let scenario = PullScenario::new(&server, &template, &host, "pr-close").await;
    scenario.run();
    let human = crate::support::git_http::human_commit(
        &scenario.bare,
        "main",
        "apps/a.yaml",
        &deployment(&host, "1.2.0", ""),
        "bump app by hand",
    );
    scenario.kill_at("pull-request-commented");
    scenario.run();
    let pulls = scenario.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].1, PullState::Closed, "{pulls:?}");
    assert_eq!(pulls[0].4, 1, "the closing comment was posted twice");
    assert!(kept(&scenario.bare, &human));
    scenario.fake.assert_clean();
}
