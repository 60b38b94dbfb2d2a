//! One user of a cache directory at a time, across processes: an exclusive `flock` on `<directory>.lock`,
//! held for the life of the [`CacheLock`] and released by the kernel when the process dies, however it
//! dies. Nothing is judged from the file's content: a PID file would name PID 1 for every daemon that
//! runs as a container's init, and a restarted container would find "1" alive forever.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::error::GitError;

#[derive(Debug)]
pub(crate) struct CacheLock {
    /// Open for as long as the lock is held: closing it (drop, exit, `kill -9`) releases the lock.
    _file: File,
}

impl CacheLock {
    /// Takes the lock of `directory`, or fails at once with [`GitError::CacheBusy`] (transient) while
    /// another process — or another store in this process — holds it.
    pub(crate) fn acquire(directory: &Path) -> Result<Self, GitError> {
        let path = lock_path(directory);
        // Never truncated before the lock is ours, and never deleted: deleting a lock file lets a third
        // process lock a new file of the same name while the second still waits on the old one.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| cache_error(&path, source))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(GitError::CacheBusy {
                    path: directory.to_path_buf(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(cache_error(&path, source)),
        }
        // For a human looking at the cache; never read back.
        let own = std::process::id().to_string();
        file.set_len(0)
            .and_then(|()| file.write_all(own.as_bytes()))
            .map_err(|source| cache_error(&path, source))?;
        Ok(CacheLock { _file: file })
    }
}

/// `<directory>.lock`, beside the directory (so removing a broken cache never removes its lock).
pub(crate) fn lock_path(directory: &Path) -> PathBuf {
    let mut name = directory.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn cache_error(path: &Path, source: std::io::Error) -> GitError {
    GitError::Cache {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn lock_is_exclusive_within_a_process_and_released_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let directory = root.path().join("repo");
        let first = CacheLock::acquire(&directory).unwrap();
        match CacheLock::acquire(&directory) {
            Err(error @ GitError::CacheBusy { .. }) => {
                assert_eq!(error.class(), crate::error::ErrorClass::Transient);
            }
            other => panic!("unexpected: {other:?}"),
        }
        drop(first);
        let again = CacheLock::acquire(&directory).unwrap();
        assert_eq!(
            std::fs::read_to_string(lock_path(&directory)).unwrap(),
            std::process::id().to_string()
        );
        drop(again);
        assert!(
            lock_path(&directory).exists(),
            "the lock file stays; only the kernel lock comes and goes"
        );
    }

    #[test]
    fn a_leftover_lock_file_naming_pid_1_does_not_block() {
        let root = tempfile::tempdir().unwrap();
        let directory = root.path().join("repo");
        // What a PID-file lock of a daemon running as a container's init leaves behind: PID 1 is
        // always alive in the restarted container.
        std::fs::write(lock_path(&directory), "1").unwrap();
        let lock = CacheLock::acquire(&directory).unwrap();
        drop(lock);
    }

    #[test]
    fn a_lock_held_by_another_process_blocks_until_that_process_is_killed() {
        let root = tempfile::tempdir().unwrap();
        let directory = root.path().join("repo");
        let lock = lock_path(&directory);
        // The shell opens the lock file, `flock(1)` locks that open file (the same `flock(2)` lock
        // `File::try_lock` takes), and the shell becomes `sleep`, still holding it.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec 9>>"$1" && flock -x 9 && echo locked && exec sleep 600"#)
            .arg("sh")
            .arg(&lock)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh and flock (util-linux) are installed");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");

        let busy = CacheLock::acquire(&directory);
        assert!(matches!(busy, Err(GitError::CacheBusy { .. })), "{busy:?}");

        // `kill -9`: no destructor, no cleanup; the kernel drops the lock with the process.
        child.kill().unwrap();
        child.wait().unwrap();
        let taken = CacheLock::acquire(&directory).unwrap();
        drop(taken);
    }
}
