//! The soak of `bench/soak.sh`, scaled to CI (docs/reliability/load.md): the daemon binary with 200
//! policies over two config repositories on `git http-backend`, a real registry whose notifications reach
//! the daemon, a push every second (one in ten a burst of three tags of one image) and a human
//! commit every ten seconds (a note, every third a revert of a field tagwatch bumped) for five minutes.
//!
//! Invariants, not speed: every push is accounted for (its tag was committed, or a newer tag of the same
//! image was), tagwatch never writes a tag nobody pushed nor goes backwards, no human commit is lost, every
//! revert holds, and after a warm-up the daemon's open files, threads and RSS stay flat (no per-push
//! leak). The bounds are wide enough for a loaded 2-core machine and far below what a leak per push
//! (well over a hundred pushes) would add.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::daemon::Daemon;
use crate::support::git_http::{GitHttpServer, git_bare, git_in};
use crate::support::ports::free_port;
use crate::support::registry::Registry;
use crate::support::seed::OCI_MANIFEST;

const HOOK_TOKEN: &str = "soak-hook-token-4e1d";
const GIT_USER: &str = "bot";
const GIT_PASSWORD: &str = "soak-git-Pa55-c9";
const IMAGES: usize = 200;
const REPOSITORIES: usize = 2;
/// How long pushes and human commits go on.
const ACTIVITY: Duration = Duration::from_secs(300);
const PUSH_EVERY: Duration = Duration::from_secs(1);
const HUMAN_EVERY: Duration = Duration::from_secs(10);
const REVERT_EVERY: usize = 3;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples before this are the warm-up (first cycle, connection pools, pack files up to libgit2's limit).
const WARM_UP: Duration = Duration::from_secs(40);
/// How long the daemon may take to catch up with the last pushes after the activity stops.
const SETTLE: Duration = Duration::from_secs(120);

fn image(index: usize) -> String {
    format!("soak/app-{index:04}")
}

/// The config repository deploying `image(index)` and the file it is in.
fn location(index: usize) -> (String, String) {
    (
        format!("cfg-{}", index % REPOSITORIES + 1),
        format!("apps/app-{index:04}.yaml"),
    )
}

fn deployment(host: &str, index: usize, tag: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{index:04}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: \"{host}/{}:{tag}\"\n",
        image(index)
    )
}

/// The patch number N of the `1.0.N` a file deploys.
fn deployed_patch(text: &str) -> Option<u64> {
    let start = text.find(":1.0.")? + ":1.0.".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What the actors did, for the checks.
#[derive(Default)]
struct Record {
    /// Per image: the newest pushed patch (0: only the seeded 1.0.0).
    newest: HashMap<usize, u64>,
    /// (image index, patch) in push order.
    pushes: Vec<(usize, u64)>,
    /// Images that still get pushes (a reverted one leaves).
    pool: Vec<usize>,
    /// (repository, commit, file, content or None for a revert).
    humans: Vec<(String, String, String, Option<String>)>,
    /// (repository, commit, image index, the patch the revert restored).
    reverts: Vec<(String, String, usize, u64)>,
}

struct Sample {
    at: Duration,
    rss_kib: u64,
    /// The anonymous part of RSS (the heap); the rest is file-backed (the binary, mapped pack indexes).
    anon_kib: u64,
    fds: usize,
    threads: u64,
}

fn sample(pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    Sample {
        at: Duration::ZERO,
        rss_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count(),
        threads: field("Threads:"),
    }
}

/// The human's clones, one per config repository, pushing over `file://` next to the daemon's HTTP.
struct Human {
    root: PathBuf,
    bares: BTreeMap<String, PathBuf>,
}

impl Human {
    fn clone_of(&self, repository: &str) -> PathBuf {
        let path = self.root.join(repository);
        if !path.exists() {
            let status = Command::new("git")
                .args(["clone", "-q"])
                .arg(&self.bares[repository])
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success());
        }
        path
    }

    /// Fetches, lets `change` edit the clone (false: nothing to do), commits and pushes, again after a
    /// rejected push (tagwatch pushed first). The pushed commit, or None.
    fn commit(
        &self,
        repository: &str,
        message: &str,
        change: impl Fn(&Path) -> bool,
    ) -> Option<String> {
        let clone = self.clone_of(repository);
        for _ in 0..20 {
            git_in(&clone, &["fetch", "-q", "origin"]);
            git_in(&clone, &["reset", "-q", "--hard", "origin/main"]);
            if !change(&clone) {
                return None;
            }
            git_in(&clone, &["add", "-A"]);
            git_in(&clone, &["commit", "-q", "-m", message]);
            let pushed = Command::new("git")
                .args(["push", "-q", "origin", "HEAD:main"])
                .current_dir(&clone)
                .env("GIT_TERMINAL_PROMPT", "0")
                .output()
                .unwrap();
            if pushed.status.success() {
                return Some(git_in(&clone, &["rev-parse", "HEAD"]).trim().to_string());
            }
            std::thread::sleep(Duration::from_millis(200 + fastrand::u64(..800)));
        }
        panic!("a human commit to {repository} was rejected 20 times");
    }
}

/// `Tagwatch-Bump: FILE IMAGE FROM -> TO` trailers on `main`, oldest first: (commit, image path, to).
fn bumps(bare: &Path) -> Vec<(String, String, u64)> {
    let log = git_bare(bare, &["log", "--reverse", "--format=%H%x00%B%x1e", "main"]);
    let mut found = Vec::new();
    for record in log.split('\x1e') {
        let Some((commit, body)) = record.trim_matches('\n').split_once('\0') else {
            continue;
        };
        for line in body.lines() {
            let Some(value) = line.strip_prefix("Tagwatch-Bump: ") else {
                continue;
            };
            let parts: Vec<&str> = value.split(' ').collect();
            assert_eq!(parts.len(), 5, "a bump trailer: {line}");
            let to = parts[4].split('@').next().unwrap();
            let patch = to.strip_prefix("1.0.").and_then(|p| p.parse().ok());
            let patch = patch.unwrap_or_else(|| panic!("a bump to {to}: {line}"));
            found.push((commit.to_string(), parts[1].to_string(), patch));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_minute_soak_accounts_for_every_push_and_human_commit_and_leaks_nothing() {
    let address = format!("127.0.0.1:{}", free_port());
    let registry = Registry::notifying(
        &format!("http://{address}/webhook/distribution"),
        HOOK_TOKEN,
    )
    .await;
    let host = registry.host.clone();
    // 200 images tagged 1.0.0, 8 pushes at once; every later push re-tags the same manifest.
    let seeder = registry.seeder(&image(1));
    let manifest = seeder
        .image_manifest(&image(1), crate::reconcile::CREATED, "amd64")
        .await;
    let mut seeding = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (seeder, manifest) = (seeder.clone(), manifest.clone());
        seeding.spawn(async move {
            for index in (1..=IMAGES).skip(worker).step_by(8) {
                let name = image(index);
                let own = seeder
                    .image_manifest(&name, crate::reconcile::CREATED, "amd64")
                    .await;
                assert_eq!(own, manifest, "every image has the same manifest");
                seeder
                    .put_manifest(&name, "1.0.0", &manifest, OCI_MANIFEST)
                    .await;
            }
        });
    }
    while let Some(done) = seeding.join_next().await {
        done.unwrap();
    }

    let git = GitHttpServer::start(GIT_USER, GIT_PASSWORD);
    let root = tempfile::tempdir().unwrap();
    let mut bares = BTreeMap::new();
    let mut entries = String::new();
    for number in 1..=REPOSITORIES {
        let name = format!("cfg-{number}");
        let bare = git.create_repo(&name);
        let work = root.path().join(format!("seed-{name}"));
        git_in(
            root.path(),
            &[
                "clone",
                "-q",
                bare.to_str().unwrap(),
                work.to_str().unwrap(),
            ],
        );
        std::fs::create_dir_all(work.join("apps")).unwrap();
        for index in (1..=IMAGES).filter(|index| location(*index).0 == name) {
            std::fs::write(
                work.join(location(index).1),
                deployment(&host, index, "1.0.0"),
            )
            .unwrap();
        }
        git_in(&work, &["add", "-A"]);
        git_in(&work, &["commit", "-q", "-m", "deploy the apps"]);
        git_in(&work, &["push", "-q", "origin", "main"]);
        entries.push_str(&format!(
            "  - name: {name}\n    url: {}\n    paths: [apps]\n    auth: {{ username: {GIT_USER}, passwordEnv: GIT_PASSWORD }}\n    writeBack: {{ mode: push, author: {{ name: tagwatch-bot, email: bot@example.com }} }}\n",
            git.url(&name)
        ));
        bares.insert(name, bare);
    }
    let policies: String = (1..=IMAGES)
        .map(|index| {
            format!(
                "---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app-{index:04} }}\nspec:\n  image: {host}/{}\n  semver: {{ range: \"^1\" }}\n",
                image(index)
            )
        })
        .collect();
    std::fs::create_dir_all(root.path().join("policies")).unwrap();
    std::fs::write(root.path().join("policies/apps.yaml"), policies).unwrap();
    let config = root.path().join("tagwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {host}\n    insecure: true\nrepositories:\n{entries}policies: [policies/]\ndaemon:\n  listen: {address}\n  stateDir: state\n  interval: 1m\n  repositoryInterval: 30s\n  webhooks:\n    distribution: {{ tokenEnv: HOOK_TOKEN }}\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::start(
        &config,
        &address,
        &[("HOOK_TOKEN", HOOK_TOKEN), ("GIT_PASSWORD", GIT_PASSWORD)],
    )
    .await;
    daemon.ready().await;
    let pid = daemon.pid();

    let record = Arc::new(Mutex::new(Record {
        newest: (1..=IMAGES).map(|index| (index, 0)).collect(),
        pool: (1..=IMAGES).collect(),
        ..Record::default()
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            loop {
                let mut taken = sample(pid);
                taken.at = started.elapsed();
                samples.push(taken);
                if stop.load(Ordering::Relaxed) {
                    return samples;
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        })
    };

    let human = {
        let (record, stop) = (record.clone(), stop.clone());
        let human = Human {
            root: root.path().join("human"),
            bares: bares.clone(),
        };
        std::thread::spawn(move || {
            let mut count = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(HUMAN_EVERY);
                count += 1;
                if count % REVERT_EVERY == 0 && revert(&human, &record) {
                    continue;
                }
                let repository = format!("cfg-{}", count % REPOSITORIES + 1);
                let file = format!("notes/human-{count:03}.md");
                let content = format!("note {count}\n");
                let commit = human.commit(&repository, &format!("note {count}"), |clone| {
                    std::fs::create_dir_all(clone.join("notes")).unwrap();
                    std::fs::write(clone.join(&file), &content).unwrap();
                    true
                });
                if let Some(commit) = commit {
                    record
                        .lock()
                        .unwrap()
                        .humans
                        .push((repository, commit, file, Some(content)));
                }
            }
        })
    };

    // The pusher: a new tag of a random image every PUSH_EVERY, one push in ten a burst of three.
    while started.elapsed() < ACTIVITY {
        let next = Instant::now() + PUSH_EVERY;
        let (index, burst) = {
            let record = record.lock().unwrap();
            let pool = &record.pool;
            (
                pool[fastrand::usize(..pool.len())],
                if fastrand::u8(..10) == 0 { 3 } else { 1 },
            )
        };
        for _ in 0..burst {
            let patch = {
                let record = record.lock().unwrap();
                if !record.pool.contains(&index) {
                    break;
                }
                record.newest[&index] + 1
            };
            seeder
                .put_manifest(
                    &image(index),
                    &format!("1.0.{patch}"),
                    &manifest,
                    OCI_MANIFEST,
                )
                .await;
            let mut record = record.lock().unwrap();
            record.newest.insert(index, patch);
            record.pushes.push((index, patch));
        }
        tokio::time::sleep_until(next.into()).await;
    }
    stop.store(true, Ordering::Relaxed);
    let human_joined = tokio::task::spawn_blocking(move || human.join())
        .await
        .unwrap();
    if let Err(panic) = human_joined {
        std::panic::resume_unwind(panic);
    }

    // The daemon catches up: every image still pushed to deploys its newest tag.
    let deployed = |index: usize| -> Option<u64> {
        let (repository, file) = location(index);
        let text = Command::new("git")
            .args(["--git-dir"])
            .arg(&bares[&repository])
            .args(["show", &format!("main:{file}")])
            .output()
            .unwrap()
            .stdout;
        deployed_patch(&String::from_utf8_lossy(&text))
    };
    let settle_started = Instant::now();
    loop {
        let behind: Vec<usize> = {
            let record = record.lock().unwrap();
            record
                .pool
                .iter()
                .copied()
                .filter(|index| deployed(*index) != Some(record.newest[index]))
                .collect()
        };
        if behind.is_empty() {
            break;
        }
        assert!(
            settle_started.elapsed() < SETTLE,
            "images not at their newest pushed tag {SETTLE:?} after the last push: {behind:?}; daemon log tail: {:#?}",
            daemon.log().iter().rev().take(40).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let samples = tokio::task::spawn_blocking(move || sampler.join().unwrap())
        .await
        .unwrap();

    let record = record.lock().unwrap();

    // Every push accounted for; tagwatch only ever moved forward, to pushed tags.
    let mut written: HashMap<usize, Vec<u64>> = HashMap::new();
    for bare in bares.values() {
        for (commit, name, patch) in bumps(bare) {
            let index = (1..=IMAGES)
                .find(|index| name == format!("{host}/{}", image(*index)))
                .unwrap_or_else(|| panic!("{commit} bumps an unknown image {name}"));
            written.entry(index).or_default().push(patch);
        }
    }
    let (mut direct, mut superseded) = (0, 0);
    for (index, patch) in &record.pushes {
        let writes = written.get(index).map(Vec::as_slice).unwrap_or_default();
        if writes.contains(patch) {
            direct += 1;
        } else if writes.iter().any(|later| later > patch) {
            superseded += 1;
        } else {
            panic!(
                "{}:1.0.{patch} was pushed and neither it nor a newer tag became a commit: {writes:?}",
                image(*index)
            );
        }
    }
    for (index, writes) in &written {
        assert!(
            writes.windows(2).all(|pair| pair[0] < pair[1]),
            "{}: tagwatch's writes go backwards or repeat: {writes:?}",
            image(*index)
        );
        assert!(
            writes.iter().all(|patch| *patch <= record.newest[index]),
            "{}: tagwatch wrote a tag nobody pushed: {writes:?}",
            image(*index)
        );
    }
    assert!(
        record.pushes.len() >= 60,
        "only {} pushes in {ACTIVITY:?}",
        record.pushes.len()
    );
    assert!(direct > 0);

    // No human commit lost: each is on main, and each note is still there as written.
    assert!(
        record.humans.len() >= 5,
        "{} human commits",
        record.humans.len()
    );
    for (repository, commit, file, content) in &record.humans {
        let bare = &bares[repository];
        let status = Command::new("git")
            .args(["--git-dir"])
            .arg(bare)
            .args(["merge-base", "--is-ancestor", commit, "main"])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the human commit {commit} ({file}) is not on main"
        );
        if let Some(content) = content {
            assert_eq!(&git_bare(bare, &["show", &format!("main:{file}")]), content);
        }
    }

    // Every revert held: the field still deploys the restored version, and nothing touched it since.
    assert!(!record.reverts.is_empty(), "no revert happened");
    for (repository, commit, index, patch) in &record.reverts {
        let (_, file) = location(*index);
        let since = git_bare(
            &bares[repository],
            &[
                "log",
                "--format=%H %an %s",
                &format!("{commit}..main"),
                "--",
                &file,
            ],
        );
        assert_eq!(since, "", "{file} changed after the human's revert");
        assert_eq!(
            deployed(*index),
            Some(*patch),
            "the revert of {file} did not hold"
        );
    }

    // Flat after the warm-up: no descriptor, thread or memory per push.
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.at >= WARM_UP).collect();
    assert!(
        steady.len() >= 10,
        "{} samples after the warm-up",
        steady.len()
    );
    let (first, last) = (steady[0], steady[steady.len() - 1]);
    let describe = || {
        samples
            .iter()
            .map(|s| {
                format!(
                    "{:>4}s rss {} KiB (anon {} KiB) fds {} threads {}",
                    s.at.as_secs(),
                    s.rss_kib,
                    s.anon_kib,
                    s.fds,
                    s.threads
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    eprintln!(
        "soak: {} pushes ({direct} committed as pushed, {superseded} superseded), {} human commits ({} reverts)\n{}",
        record.pushes.len(),
        record.humans.len(),
        record.reverts.len(),
        describe()
    );
    // libgit2 keeps up to MAX_OPEN_PACK_FILES pack files open across the cache clones, filled as fetches
    // add packs; beyond it, and a few connections, any growth is a leak (one per push would be hundreds).
    assert!(
        last.fds <= first.fds + tagwatch::git::MAX_OPEN_PACK_FILES + 8,
        "open files grew from {} to {} after the warm-up:\n{}",
        first.fds,
        last.fds,
        describe()
    );
    assert!(
        last.threads <= first.threads + 8,
        "threads grew from {} to {} after the warm-up:\n{}",
        first.threads,
        last.threads,
        describe()
    );
    assert!(
        last.rss_kib * 5 <= first.rss_kib * 6,
        "RSS grew by more than 20 % after the warm-up:\n{}",
        describe()
    );
}

/// A revert by the human: an image whose field holds a version tagwatch wrote (and was not pushed to in
/// the last 30 s) is set back to the version before, and gets no more pushes. False when no image
/// qualifies yet.
fn revert(human: &Human, record: &Mutex<Record>) -> bool {
    let candidates: Vec<usize> = {
        let record = record.lock().unwrap();
        let recent: Vec<usize> = record.pushes.iter().rev().take(60).map(|p| p.0).collect();
        record
            .pool
            .iter()
            .copied()
            .filter(|index| record.newest[index] > 0 && !recent.contains(index))
            .collect()
    };
    for index in candidates {
        let (repository, file) = location(index);
        let clone = human.clone_of(&repository);
        git_in(&clone, &["fetch", "-q", "origin"]);
        let last = git_in(
            &clone,
            &["log", "-1", "--format=%B", "origin/main", "--", &file],
        );
        let Some(parts) = last
            .lines()
            .filter_map(|line| line.strip_prefix("Tagwatch-Bump: "))
            .map(|trailer| trailer.split(' ').collect::<Vec<&str>>())
            .find(|parts| parts.len() == 5 && parts[0] == file)
        else {
            continue;
        };
        let (from, to) = (parts[2].to_string(), parts[4].to_string());
        record.lock().unwrap().pool.retain(|other| *other != index);
        let commit = human.commit(
            &repository,
            &format!("revert app-{index:04} to {from}"),
            |clone| {
                let path = clone.join(&file);
                let text = std::fs::read_to_string(&path).unwrap();
                let wrote = format!(":{to}\"");
                if !text.contains(&wrote) {
                    return false;
                }
                std::fs::write(&path, text.replace(&wrote, &format!(":{from}\""))).unwrap();
                true
            },
        );
        let mut record = record.lock().unwrap();
        match commit {
            Some(commit) => {
                let patch = deployed_patch(&format!(":{from}")).unwrap();
                record
                    .humans
                    .push((repository.clone(), commit.clone(), file, None));
                record.reverts.push((repository, commit, index, patch));
                return true;
            }
            None => record.pool.push(index),
        }
    }
    false
}
