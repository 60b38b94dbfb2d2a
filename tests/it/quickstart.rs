//! The README's first command, `deploy/quickstart.sh`, with the binary under test instead of its
//! release build (`TAGWATCH_BINARY`): it starts a registry, a git remote over HTTP and the daemon,
//! pushes an image and shows the commit arriving; the demo keeps running (another push becomes another
//! commit) until its `stop.sh`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn commits(bare: &Path) -> Vec<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(bare)
        .args(["log", "--format=%s", "main"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_quickstart_shows_a_push_becoming_a_commit_and_leaves_a_running_demo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let directory = tempfile::tempdir().unwrap();
    let demo = directory.path().join("demo");
    let output = Command::new("bash")
        .arg(root.join("deploy/quickstart.sh"))
        .arg(&demo)
        .env("TAGWATCH_BINARY", env!("CARGO_BIN_EXE_tagwatch"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stop = || {
        let stopped = Command::new(demo.join("stop.sh")).output().unwrap();
        assert!(stopped.status.success(), "{stopped:?}");
        String::from_utf8_lossy(&stopped.stdout).to_string()
    };
    if !output.status.success() {
        let _ = Command::new(demo.join("stop.sh")).status();
        panic!(
            "{stdout}\n{}\ndaemon log: {}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(demo.join("logs/daemon.log")).unwrap_or_default()
        );
    }
    assert!(stdout.contains("the commit reached the remote"), "{stdout}");
    assert!(stdout.contains("6.4.0 → 6.5.1"), "{stdout}");
    let bare = demo.join("git/config.git");
    assert_eq!(commits(&bare).len(), 2, "{stdout}");

    // The demo keeps running: another push, another commit, without anything else.
    let pushed = Command::new(demo.join("push.sh"))
        .arg("6.6.0")
        .output()
        .unwrap();
    assert!(pushed.status.success(), "{pushed:?}");
    let started = Instant::now();
    while commits(&bare).len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no commit for 6.6.0: {}",
            std::fs::read_to_string(demo.join("logs/daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        commits(&bare)[0].ends_with("6.5.1 → 6.6.0"),
        "{:?}",
        commits(&bare)
    );

    let pids: Vec<String> = ["daemon", "git", "registry"]
        .iter()
        .map(|name| {
            std::fs::read_to_string(demo.join(format!("logs/{name}.pid")))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    let stopped = stop();
    for name in ["daemon", "git", "registry"] {
        assert!(stopped.contains(&format!("stopped {name}")), "{stopped}");
        assert!(!demo.join(format!("logs/{name}.pid")).exists());
    }
    let started = Instant::now();
    while pids
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still running: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
