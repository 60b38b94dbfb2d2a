//! Fault points for crash and interleaving tests, compiled in for debug builds only (release builds
//! never read the variables and every call is a no-op).
//!
//! `TAGWATCH_FAULT_POINT=NAME` names one point. When the process reaches it, it says so on stderr
//! (`tagwatch: fault point NAME reached`) and then either waits to be killed (the test sends SIGKILL:
//! a `kill -9` exactly there), or — with `TAGWATCH_FAULT_RESUME=FILE` — waits until `FILE` exists and
//! goes on (`… resumed`), the first time only, so a test can act (a human's push) at exactly that step.
//!
//! The points of a write-back, in order ([`POINTS`]): `before-commit`, `blob-written`,
//! `commit-created`, `before-push`, `push-started`, `push-done`, `after-push` (push mode);
//! `blob-written`, `commit-created`, `push-started`, `push-done`, `before-pull-request`,
//! `pull-request-created`, `pull-request-updated`, `pull-request-commented` (pull-request mode);
//! `state-saved` (the daemon's status report committed to the state store).
//!
//! Must not: change behaviour in a release build, or be reached by anything but a test's variable.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::environment::Environment;

/// Names the fault point (debug builds).
pub const POINT_VARIABLE: &str = "TAGWATCH_FAULT_POINT";
/// With a fault point: the file whose existence lets the process go on instead of waiting to be killed.
pub const RESUME_VARIABLE: &str = "TAGWATCH_FAULT_RESUME";

/// Debug builds: shortens libgit2's network timeouts to this many milliseconds, so a test of a stalled
/// remote ends in seconds instead of [`crate::git::SERVER_TIMEOUT_MILLISECONDS`].
pub const GIT_TIMEOUT_VARIABLE: &str = "TAGWATCH_FAULT_GIT_TIMEOUT_MS";

/// Every fault point, in the order a write-back meets them.
pub const POINTS: &[&str] = &[
    "before-commit",
    "blob-written",
    "commit-created",
    "before-push",
    "push-started",
    "push-done",
    "after-push",
    "before-pull-request",
    "pull-request-created",
    "pull-request-updated",
    "pull-request-commented",
    "state-saved",
];

/// A configured fault point.
#[derive(Debug, Clone)]
pub struct Fault {
    point: String,
    resume: Option<PathBuf>,
}

impl Fault {
    /// The fault point `environment` names; always `None` in release builds.
    pub fn from_environment(environment: &Environment) -> Option<Fault> {
        if !cfg!(debug_assertions) {
            return None;
        }
        let point = environment.get(POINT_VARIABLE)?.to_string();
        Some(Fault {
            point,
            resume: environment.get(RESUME_VARIABLE).map(PathBuf::from),
        })
    }

    /// Stops (or pauses) here when `point` is the configured one.
    pub fn at(&self, point: &str) {
        if !cfg!(debug_assertions) || self.point != point {
            return;
        }
        static PAUSED: AtomicBool = AtomicBool::new(false);
        eprintln!("tagwatch: fault point {point} reached");
        match &self.resume {
            Some(file) if !PAUSED.swap(true, Ordering::SeqCst) => {
                while !file.exists() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                eprintln!("tagwatch: fault point {point} resumed");
            }
            Some(_) => {}
            None => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
        }
    }
}

/// Stops (or pauses) at `point` when the process environment names it (debug builds). For code below
/// the controller (git, forge, state store), which has no `Environment` of its own.
pub fn point(point: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    if let Some(fault) = FAULT.get_or_init(|| Fault::from_environment(&Environment::from_process()))
    {
        fault.at(point);
    }
}

/// The network timeout a test asked for with [`GIT_TIMEOUT_VARIABLE`] (debug builds only).
pub fn git_timeout_milliseconds() -> Option<i32> {
    if !cfg!(debug_assertions) {
        return None;
    }
    Environment::from_process()
        .get(GIT_TIMEOUT_VARIABLE)?
        .parse()
        .ok()
        .filter(|milliseconds| *milliseconds > 0)
}
