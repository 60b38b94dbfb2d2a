//! The thin I/O layer of `manifest`: finding YAML files under paths and writing a rewritten file
//! atomically. Everything else in `manifest` is pure.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Errors of the file layer, each naming the path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Whether a file name is one discovery looks at when walking a directory.
pub fn is_yaml_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|extension| extension.to_str()),
        Some("yaml" | "yml")
    )
}

/// Every file under `paths`, sorted: a path that is a file is taken as given (whatever its name), a
/// directory is walked for `*.yaml` / `*.yml`, skipping hidden directories (`.git`). Symlinks are not
/// followed out of the tree.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FileError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = fs::metadata(path).map_err(|source| FileError::Read {
            path: path.clone(),
            source,
        })?;
        if metadata.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk(directory: &Path, files: &mut Vec<PathBuf>) -> Result<(), FileError> {
    let read_error = |source| FileError::Read {
        path: directory.to_path_buf(),
        source,
    };
    for entry in fs::read_dir(directory).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(read_error)?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if file_type.is_dir() && !hidden {
            walk(&path, files)?;
        } else if file_type.is_file() && is_yaml_name(&path) {
            files.push(path);
        }
    }
    Ok(())
}

pub fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    fs::read(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces the content of `path` with `bytes` atomically: a temporary file in the same directory,
/// written, given the original's permissions, synced, then renamed over the original. A failure leaves
/// the original untouched and removes the temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let write_error = |source| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let permissions = fs::metadata(path).map_err(write_error)?.permissions();
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tagwatch")
        .tempfile_in(directory)
        .map_err(write_error)?;
    temporary.write_all(bytes).map_err(write_error)?;
    temporary
        .as_file()
        .set_permissions(permissions)
        .map_err(write_error)?;
    temporary.as_file().sync_all().map_err(write_error)?;
    temporary
        .persist(path)
        .map_err(|error| write_error(error.error))?;
    // The rename is durable only once the directory entry is.
    if let Ok(handle) = fs::File::open(directory) {
        let _ = handle.sync_all();
    }
    Ok(())
}
