//! Build script: records the commit the binary is built from as `TAGWATCH_COMMIT`, for `tagwatch
//! --version` (docs/deploy.md). `TAGWATCH_COMMIT` from the environment wins (a build without `.git`,
//! e.g. from a source archive); otherwise, in optimized builds, `git rev-parse HEAD`; otherwise
//! `unknown`.
//!
//! Only the git files that name the commit are watched, so an optimized build is redone when HEAD
//! moves and not on every change to a file in the package. Debug builds (`cargo build`, `cargo
//! test`) do not ask git at all: a commit must not recompile the crate and every test binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TAGWATCH_COMMIT");
    let optimized = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let commit = match std::env::var("TAGWATCH_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_string(),
        _ if optimized => commit_from_git(),
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=TAGWATCH_COMMIT={commit}");
}

/// HEAD's commit, or `unknown` with a warning when the package is a git checkout whose commit cannot
/// be read; then a path that never exists is watched, so the next build asks again instead of
/// keeping `unknown` for good.
fn commit_from_git() -> String {
    let Some(directory) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return "unknown".to_string();
    };
    let git = directory.join(".git");
    if !git.exists() {
        return "unknown".to_string();
    }
    match from_git(&directory) {
        Ok(commit) => commit,
        Err(reason) => {
            println!(
                "cargo:warning=tagwatch --version will say `commit unknown` ({reason}); asked again on the next build"
            );
            println!(
                "cargo:rerun-if-changed={}",
                git.join("tagwatch-retry-commit").display()
            );
            "unknown".to_string()
        }
    }
}

/// HEAD's commit, watching `HEAD`, the branch file it names and `packed-refs` (a worktree keeps its
/// own `HEAD` and shares the refs of the main repository). Only files that exist are watched: Cargo
/// reruns a build script on every build while a watched file is missing.
fn from_git(directory: &Path) -> Result<String, String> {
    let git_dir = directory.join(git(directory, &["rev-parse", "--git-dir"])?);
    let common_dir = directory.join(git(directory, &["rev-parse", "--git-common-dir"])?);
    let head = git_dir.join("HEAD");
    watch(&head);
    watch(&common_dir.join("packed-refs"));
    if let Ok(text) = std::fs::read_to_string(&head)
        && let Some(reference) = text.trim().strip_prefix("ref: ")
    {
        watch(&common_dir.join(reference));
    }
    git(directory, &["rev-parse", "HEAD"])
}

fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// `git ARGS` in `directory`: its trimmed stdout, or why it failed.
fn git(directory: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(directory)
        .output()
        .map_err(|error| format!("git did not start: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout)
        .map(|text| text.trim().to_string())
        .map_err(|_| format!("git {} printed something that is not UTF-8", args.join(" ")))
}
