//! The state directory's store (`daemon.stateDir/state.redb`): an embedded, crash-safe key-value store
//! (redb: copy-on-write B-trees, each commit durable and atomic) holding what makes a restart cheap and
//! `tagwatch status` answer without a running daemon — tag listings with their checksum and when they
//! were read, and the last status report (targets, holds, pending and waiting bumps, pull requests,
//! errors).
//!
//! Nothing here is the source of truth: git and the forge are. Losing or corrupting the file loses no
//! correctness — a corrupt file is moved aside and a new one started. Why redb over SQLite:
//! `docs/daemon.md`.
//!
//! Must not: be written from the daemon's async loop directly (commits fsync; callers use
//! `spawn_blocking`), or hold anything secret.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase as _, TableDefinition};
use serde::{Deserialize, Serialize};

/// The store's file inside the state directory.
pub const STATE_FILE: &str = "state.redb";

/// image → [`StoredListing`] (JSON).
const LISTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("listings");
/// `"report"` → the last status report (JSON).
const STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("status");
const REPORT_KEY: &str = "report";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("creating the state directory {}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state store {} is in use by another tagwatch (one daemon per state directory)", path.display())]
    Busy { path: PathBuf },
    #[error("the state store {}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
}

/// A tag listing as kept between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredListing {
    pub tags: Vec<String>,
    pub checksum: u64,
    /// Unix seconds when it was read.
    pub fetched_at: i64,
}

/// The store's page cache. redb's default (1 GiB) keeps every page it ever read or wrote; the
/// daemon reads the listings once at start and writes a listing or the report now and then, so a
/// small cache costs nothing measurable, and bounds what the store holds in memory (its file is
/// ≈ 1.5 MB for 1,000 listings and their report).
const CACHE_BYTES: usize = 512 * 1024;

fn open_store(path: &Path) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(CACHE_BYTES).create(path)
}

pub struct State {
    path: PathBuf,
    database: Database,
}

impl State {
    /// Opens (or creates) the store in `directory`. A file that is not a readable store is moved aside
    /// (`state.redb.corrupt-<unix time>`) and a new one is started.
    pub fn open(directory: &Path) -> Result<State, StateError> {
        std::fs::create_dir_all(directory).map_err(|source| StateError::Directory {
            path: directory.to_path_buf(),
            source,
        })?;
        let path = directory.join(STATE_FILE);
        let database = match open_store(&path) {
            Ok(database) => database,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StateError::Busy { path });
            }
            Err(error) => {
                let aside =
                    path.with_extension(format!("redb.corrupt-{}", chrono::Utc::now().timestamp()));
                tracing::warn!(file = %path.display(), error = %error, aside = %aside.display(), "the state store is unreadable; starting a new one (git and the forge remain the source of truth)");
                std::fs::rename(&path, &aside).map_err(|source| StateError::Directory {
                    path: path.clone(),
                    source,
                })?;
                open_store(&path).map_err(|error| StateError::Store {
                    path: path.clone(),
                    source: Box::new(error.into()),
                })?
            }
        };
        Ok(State { path, database })
    }

    fn error(&self, error: impl Into<redb::Error>) -> StateError {
        StateError::Store {
            path: self.path.clone(),
            source: Box::new(error.into()),
        }
    }

    fn put(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &[u8],
    ) -> Result<(), StateError> {
        let transaction = self.database.begin_write().map_err(|e| self.error(e))?;
        {
            let mut table = transaction.open_table(table).map_err(|e| self.error(e))?;
            table.insert(key, value).map_err(|e| self.error(e))?;
        }
        transaction.commit().map_err(|e| self.error(e))
    }

    /// Keeps `listing` of `image`.
    pub fn save_listing(&self, image: &str, listing: &StoredListing) -> Result<(), StateError> {
        let json = serde_json::to_vec(listing).expect("a listing serializes");
        self.put(LISTINGS, image, &json)
    }

    /// Every kept listing. An entry that does not decode is skipped (it is only a cache).
    pub fn listings(&self) -> Result<Vec<(String, StoredListing)>, StateError> {
        let transaction = self.database.begin_read().map_err(|e| self.error(e))?;
        let table = match transaction.open_table(LISTINGS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(error) => return Err(self.error(error)),
        };
        let mut listings = Vec::new();
        for entry in table.range::<&str>(..).map_err(|e| self.error(e))? {
            let (key, value) = entry.map_err(|e| self.error(e))?;
            if let Ok(listing) = serde_json::from_slice::<StoredListing>(value.value()) {
                listings.push((key.value().to_string(), listing));
            }
        }
        Ok(listings)
    }

    /// Drops the listings of images no policy tracks any more.
    pub fn retain_listings(&self, keep: impl Fn(&str) -> bool) -> Result<(), StateError> {
        let stale: Vec<String> = self
            .listings()?
            .into_iter()
            .map(|(image, _)| image)
            .filter(|image| !keep(image))
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let transaction = self.database.begin_write().map_err(|e| self.error(e))?;
        {
            let mut table = transaction
                .open_table(LISTINGS)
                .map_err(|e| self.error(e))?;
            for image in &stale {
                table.remove(image.as_str()).map_err(|e| self.error(e))?;
            }
        }
        transaction.commit().map_err(|e| self.error(e))
    }

    /// Keeps the last status report (any serializable value; the daemon's `status::Report`).
    pub fn save_report(&self, report: &impl serde::Serialize) -> Result<(), StateError> {
        let json = serde_json::to_vec(report).expect("a report serializes");
        self.put(STATUS, REPORT_KEY, &json)?;
        crate::fault::point("state-saved");
        Ok(())
    }

    /// The last status report, if any was kept.
    pub fn report(&self) -> Result<Option<serde_json::Value>, StateError> {
        let transaction = self.database.begin_read().map_err(|e| self.error(e))?;
        let table = match transaction.open_table(STATUS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(self.error(error)),
        };
        let value = table.get(REPORT_KEY).map_err(|e| self.error(e))?;
        Ok(value.and_then(|value| serde_json::from_slice(value.value()).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(tags: &[&str]) -> StoredListing {
        StoredListing {
            tags: tags.iter().map(|tag| tag.to_string()).collect(),
            checksum: 7,
            fetched_at: 1_700_000_000,
        }
    }

    #[test]
    fn listings_and_the_report_survive_a_reopen() {
        let directory = tempfile::tempdir().unwrap();
        {
            let state = State::open(directory.path()).unwrap();
            assert!(state.listings().unwrap().is_empty());
            assert_eq!(state.report().unwrap(), None);
            state.save_listing("r.io/a", &listing(&["1.0.0"])).unwrap();
            state.save_listing("r.io/b", &listing(&["2.0.0"])).unwrap();
            state
                .save_report(&serde_json::json!({"policies": []}))
                .unwrap();
        }
        let state = State::open(directory.path()).unwrap();
        assert_eq!(
            state.listings().unwrap(),
            vec![
                ("r.io/a".to_string(), listing(&["1.0.0"])),
                ("r.io/b".to_string(), listing(&["2.0.0"]))
            ]
        );
        assert_eq!(
            state.report().unwrap(),
            Some(serde_json::json!({"policies": []}))
        );
        state.retain_listings(|image| image == "r.io/b").unwrap();
        assert_eq!(state.listings().unwrap().len(), 1);
    }

    #[test]
    fn a_second_open_of_one_directory_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let _first = State::open(directory.path()).unwrap();
        assert!(matches!(
            State::open(directory.path()),
            Err(StateError::Busy { .. })
        ));
    }

    #[test]
    fn a_corrupt_store_is_moved_aside_and_started_anew() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join(STATE_FILE), b"not a database at all").unwrap();
        let state = State::open(directory.path()).unwrap();
        assert!(state.listings().unwrap().is_empty());
        let aside = std::fs::read_dir(directory.path())
            .unwrap()
            .filter_map(|entry| entry.ok())
            .any(|entry| entry.file_name().to_string_lossy().contains("corrupt"));
        assert!(aside);
    }
}
