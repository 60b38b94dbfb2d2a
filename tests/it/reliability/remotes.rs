//! Broken git remotes: a connection reset, a fetch cut or stalled mid-pack, a push whose answer stalls
//! (the push may have landed), a pre-receive hook that hangs, one that runs out of disk, a branch
//! protection hook; and a human pushing during every phase of a write-back. Each failure is reported
//! with its class, the other repository of the run is still written, and the next run converges: 0 lost
//! human commits, 0 force-pushes to `main`, exactly one tagwatch commit.

use std::path::Path;

use super::tcp_fault::{Fault, TcpFault};
use super::*;
use crate::reconcile::{deployment, policy, registry_with, show, write_config};
use crate::support::git_http::human_commit;
use crate::support::sshd::SshServer;

/// A libgit2 network timeout short enough for tests of stalled servers (debug builds only).
const SHORT_TIMEOUT_MS: &str = "1500";

fn env_with_short_timeout() -> Vec<(&'static str, &'static str)> {
    let mut env = git_env();
    env.push((tagwatch::fault::GIT_TIMEOUT_VARIABLE, SHORT_TIMEOUT_MS));
    env
}

/// The one bump of these scenarios landed exactly once, on top of every human commit, never forced.
fn converged(bare: &Path, host: &str, humans: &[String]) {
    assert_eq!(show(bare, "apps/a.yaml"), deployment(host, "1.2.0", ""));
    assert_eq!(bot_commits(bare), 1, "a duplicate or missing bump commit");
    assert_eq!(force_pushes(bare), 0, "a force-push to main");
    for human in humans {
        assert!(kept(bare, human), "lost human commit {human}");
    }
}

/// Through the fault proxy: a reset connection, a fetch cut mid-pack, a fetch stalled mid-pack, a
/// push whose answer is cut and one whose answer stalls (the server took both pushes). Every time the
/// flaky repository fails as transient while the good one is written, and the next run converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_stalled_connections_fail_transient_and_the_next_run_converges() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let server = git_server();
    let proxy = TcpFault::start(server.url("x").split('/').nth(2).unwrap()).await;
    let scenarios = [
        ("reset", Fault::Reset),
        (
            "fetch-cut",
            Fault::Cut {
                marker: "/git-upload-pack HTTP",
                after: 200,
            },
        ),
        (
            "fetch-stall",
            Fault::Stall {
                marker: "/git-upload-pack HTTP",
                after: 200,
            },
        ),
        (
            "push-cut",
            Fault::Cut {
                marker: "/git-receive-pack HTTP",
                after: 0,
            },
        ),
        (
            "push-stall",
            Fault::Stall {
                marker: "/git-receive-pack HTTP",
                after: 0,
            },
        ),
    ];
    for (name, fault) in scenarios {
        let root = tempfile::tempdir().unwrap();
        let files = [("apps/a.yaml", deployment(&host, "1.0.0", ""))];
        let flaky = server.create_repo(&format!("flaky-{name}"));
        crate::reconcile::add_files(&flaky, &files);
        protect_main(&flaky, "");
        let good = server.create_repo(&format!("good-{name}"));
        crate::reconcile::add_files(&good, &files);
        let human = crate::reconcile::head(&flaky);
        let through_proxy = server
            .url(&format!("flaky-{name}"))
            .replace(server.url("x").split('/').nth(2).unwrap(), &proxy.address);
        let repositories = [
            http_entry("flaky", &through_proxy, "mode: push, "),
            http_entry("good", &server.url(&format!("good-{name}")), "mode: push, "),
        ]
        .concat();
        let config = write_config(root.path(), &registry, &repositories, &policy(&host, ""));
        let struck = proxy.struck();
        proxy.set(fault.clone());
        let output = tagwatch(
            &config,
            &["--log-format", "json", "run", "--once"],
            &env_with_short_timeout(),
        );
        proxy.set(Fault::Pass);
        assert!(proxy.struck() > struck, "{name}: the fault never struck");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name}: {}",
            text(&output.stderr)
        );
        let problems = reported(&output);
        assert_eq!(problems.len(), 1, "{name}: {problems:?}");
        assert_eq!(problems[0].0, "flaky", "{name}: {problems:?}");
        assert_eq!(problems[0].1, "transient", "{name}: {problems:?}");
        converged(&good, &host, &[]);
        // A fetch that failed never pushed; a push whose answer stalled had landed on the server: the
        // next run must find it there and add nothing.
        let landed = crate::reconcile::head(&flaky) != human;
        if name.starts_with("fetch") || name == "reset" {
            assert!(!landed, "{name}");
        }
        if name == "push-stall" {
            assert!(landed, "{name}: the server never took the push");
        }

        run_once_ok(&config, &git_env(), name);
        converged(&flaky, &host, &[human]);
        let again = crate::reconcile::head(&flaky);
        run_once_ok(&config, &git_env(), name);
        assert_eq!(
            crate::reconcile::head(&flaky),
            again,
            "{name}: not converged"
        );
    }
}

/// A pre-receive hook that hangs holds the push only until the network bound, over HTTP and over SSH
/// (where `git receive-pack` sends keep-alives while the hook runs); the failure is transient and the
/// next run, with the hook done, converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_pre_receive_hook_holds_the_push_only_until_the_bound() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let files = [("apps/a.yaml", deployment(&host, "1.0.0", ""))];
    let server = git_server();
    let http = server.create_repo("hanging");
    crate::reconcile::add_files(&http, &files);
    let sshd = SshServer::start();
    let ssh = sshd.create_repo("hanging-ssh");
    crate::reconcile::add_files(&ssh, &files);
    let release = root.path().join("release");
    for bare in [&http, &ssh] {
        let hang = format!(
            "cat >/dev/null\ntouch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\n",
            bare.with_extension("hook-entered").display(),
            release.display()
        );
        protect_main(bare, &hang);
    }
    let humans = [crate::reconcile::head(&http), crate::reconcile::head(&ssh)];
    let repositories = [
        http_entry("http", &server.url("hanging"), "mode: push, "),
        format!(
            "  - name: ssh\n    url: {}\n    paths: [apps]\n    auth: {{ sshKeyFile: {}, knownHostsFile: {} }}\n    writeBack: {{ mode: push, author: {{ name: tagwatch-bot, email: {BOT_EMAIL} }} }}\n",
            sshd.url(&ssh),
            sshd.client_key().display(),
            sshd.known_hosts().display()
        ),
    ]
    .concat();
    let config = write_config(root.path(), &registry, &repositories, &policy(&host, ""));
    let output = tagwatch(
        &config,
        &["--log-format", "json", "run", "--once"],
        &env_with_short_timeout(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let mut problems = reported(&output);
    problems.sort();
    let summary: Vec<(&str, &str)> = problems
        .iter()
        .map(|(repository, class, _)| (repository.as_str(), class.as_str()))
        .collect();
    assert_eq!(
        summary,
        [("http", "transient"), ("ssh", "transient")],
        "{problems:?}"
    );
    for bare in [&http, &ssh] {
        assert!(
            bare.with_extension("hook-entered").exists(),
            "the push never reached the hook"
        );
    }
    std::fs::write(&release, "").unwrap();
    // The held pushes may still land once the hook lets go; either way the next run converges.
    let output = tagwatch(&config, &["run", "--once"], &git_env());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    converged(&http, &host, &humans[..1]);
    converged(&ssh, &host, &humans[1..]);
}

/// A remote out of disk (its pre-receive hook fails with "No space left on device") is reported as
/// transient with the server's words; a branch protection hook that refuses every push to `main` is
/// permanent, with its words, and nothing is forced. Once the disk has room, the next run converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_disk_is_transient_and_branch_protection_is_permanent_with_the_servers_words() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let files = [("apps/a.yaml", deployment(&host, "1.0.0", ""))];
    let server = git_server();
    let full = server.create_repo("full");
    crate::reconcile::add_files(&full, &files);
    let protected = server.create_repo("protected");
    crate::reconcile::add_files(&protected, &files);
    let disk_full = root.path().join("disk-full");
    std::fs::write(&disk_full, "").unwrap();
    protect_main(
        &full,
        &format!(
            "if [ -e '{}' ]; then cat >/dev/null; echo 'fatal: write error: No space left on device' >&2; exit 1; fi\n",
            disk_full.display()
        ),
    );
    protect_main(
        &protected,
        "cat >/dev/null\necho 'GH006: Protected branch update failed for refs/heads/main: changes must be made through a pull request' >&2\nexit 1\n",
    );
    let before = [
        crate::reconcile::head(&full),
        crate::reconcile::head(&protected),
    ];
    let repositories = [
        http_entry("full", &server.url("full"), "mode: push, "),
        http_entry("protected", &server.url("protected"), "mode: push, "),
    ]
    .concat();
    let config = write_config(root.path(), &registry, &repositories, &policy(&host, ""));
    let output = tagwatch(
        &config,
        &["--log-format", "json", "run", "--once"],
        &git_env(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let mut problems = reported(&output);
    problems.sort();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        (problems[0].0.as_str(), problems[0].1.as_str()),
        ("full", "transient")
    );
    assert!(
        problems[0].2.contains("No space left on device"),
        "{problems:?}"
    );
    assert_eq!(
        (problems[1].0.as_str(), problems[1].1.as_str()),
        ("protected", "permanent")
    );
    assert!(
        problems[1]
            .2
            .contains("changes must be made through a pull request"),
        "{problems:?}"
    );
    assert_eq!(crate::reconcile::head(&full), before[0]);
    assert_eq!(crate::reconcile::head(&protected), before[1]);

    std::fs::remove_file(&disk_full).unwrap();
    let output = tagwatch(
        &config,
        &["--log-format", "json", "run", "--once"],
        &git_env(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let problems = reported(&output);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "protected");
    converged(&full, &host, &before[..1]);
    assert_eq!(crate::reconcile::head(&protected), before[1]);
    assert_eq!(force_pushes(&protected), 0);
}

/// A human pushes to `main` during every phase of a push-mode write-back (the process paused at the
/// fault point): the human's commit is kept, nothing is forced, the bump lands exactly once, in the same
/// run; and the next run changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_pushing_during_every_push_phase_loses_nothing() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let server = git_server();
    for (index, point) in push_points().iter().enumerate() {
        let root = tempfile::tempdir().unwrap();
        let name = format!("phase-{index}");
        let bare = server.create_repo(&name);
        crate::reconcile::add_files(&bare, &[("apps/a.yaml", deployment(&host, "1.0.0", ""))]);
        protect_main(&bare, "");
        let config = write_config(
            root.path(),
            &registry,
            &http_entry("local", &server.url(&name), "mode: push, "),
            &policy(&host, ""),
        );
        let human = std::sync::Mutex::new(String::new());
        let output = paused_at(&config, &["run", "--once"], &git_env(), point, || {
            *human.lock().unwrap() = human_readme(&bare, &format!("# pushed during {point}\n"));
        });
        succeeded(&output, point);
        let human = human.into_inner().unwrap();
        converged(&bare, &host, std::slice::from_ref(&human));
        assert_eq!(
            show(&bare, "README.md"),
            format!("# pushed during {point}\n")
        );
        let head = crate::reconcile::head(&bare);
        run_once_ok(&config, &git_env(), point);
        assert_eq!(
            crate::reconcile::head(&bare),
            head,
            "{point}: not converged"
        );
    }
}

/// The same over SSH for the phase where the race is tightest: the human pushes after tagwatch's push
/// negotiated its old value and before the pack is sent. The server refuses the stale update; tagwatch
/// re-plans on the human's commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_pushing_mid_push_over_ssh_is_kept() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let sshd = SshServer::start();
    let bare = sshd.create_repo("raced");
    crate::reconcile::add_files(&bare, &[("apps/a.yaml", deployment(&host, "1.0.0", ""))]);
    protect_main(&bare, "");
    let repository = format!(
        "  - name: local\n    url: {}\n    paths: [apps]\n    auth: {{ sshKeyFile: {}, knownHostsFile: {} }}\n    writeBack: {{ mode: push, author: {{ name: tagwatch-bot, email: {BOT_EMAIL} }} }}\n",
        sshd.url(&bare),
        sshd.client_key().display(),
        sshd.known_hosts().display()
    );
    let config = write_config(root.path(), &registry, &repository, &policy(&host, ""));
    let human = std::sync::Mutex::new(String::new());
    let output = paused_at(&config, &["run", "--once"], &[], "push-started", || {
        *human.lock().unwrap() = human_commit(
            &bare,
            "main",
            "apps/a.yaml",
            &deployment(&host, "1.0.0", " # deployed by hand"),
            "note",
        );
    });
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let human = human.into_inner().unwrap();
    assert!(kept(&bare, &human));
    assert_eq!(bot_commits(&bare), 1);
    assert_eq!(force_pushes(&bare), 0);
    assert_eq!(
        show(&bare, "apps/a.yaml"),
        deployment(&host, "1.2.0", " # deployed by hand")
    );
}
