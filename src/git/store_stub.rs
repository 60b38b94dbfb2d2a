#![allow(dead_code, unused_variables)]
use super::*;
use git2::Oid;
use std::path::{Path, PathBuf};
pub struct Store {
    settings: RemoteSettings,
}
pub struct Listing {
    pub files: Vec<TreeFile>,
    pub skipped: Vec<Skipped>,
}
pub struct TreeFile {
    pub path: String,
    pub blob: Oid,
    pub size: u64,
}
#[derive(Debug)]
pub enum SkipReason {
    Symlink,
    Submodule,
}
pub struct Skipped {
    pub path: String,
    pub reason: SkipReason,
}
impl Store {
    pub fn open(cache_root: &Path, settings: &RemoteSettings) -> Result<Store, GitError> {
        todo!()
    }
    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }
    pub fn fetch(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        todo!()
    }
    pub fn list_files(&self, commit: Oid, paths: &[PathBuf]) -> Result<Listing, GitError> {
        todo!()
    }
    pub fn read_blob(&self, blob: Oid, max_bytes: u64) -> Result<Vec<u8>, GitError> {
        todo!()
    }
    pub fn file_at(
        &self,
        commit: Oid,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, GitError> {
        todo!()
    }
    pub fn commit(
        &self,
        parent: Oid,
        changes: &[(String, Vec<u8>)],
        identity: &CommitIdentity,
        message: &str,
        signing: &Signing,
    ) -> Result<Option<Oid>, GitError> {
        todo!()
    }
    pub fn push(&self, commit: Oid) -> Result<PushOutcome, GitError> {
        todo!()
    }
    pub fn force_push(&self, commit: Oid, branch: &str) -> Result<(), GitError> {
        todo!()
    }
    pub fn commit_info(&self, id: Oid) -> Result<CommitInfo, GitError> {
        todo!()
    }
    pub fn recent_commits(
        &self,
        head: Oid,
        limit: usize,
    ) -> Result<(Vec<CommitInfo>, bool), GitError> {
        todo!()
    }
    pub fn same_tree(&self, a: Oid, b: Oid) -> Result<bool, GitError> {
        todo!()
    }
}
