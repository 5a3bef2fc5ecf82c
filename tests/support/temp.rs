//! A temporary directory for one test, removed when dropped.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// A fresh directory under the system's temporary directory, unique per process, name and
/// moment; removed (with everything in it) when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Makes `<tmp>/<prefix>-<pid>-<nanoseconds>`.
    pub fn new(prefix: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
