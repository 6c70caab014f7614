//! What the trainer's integration tests share.

use std::path::{Path, PathBuf};

/// A folder for one test in the system's temporary directory (`tinyvae-NAME-PID`), emptied
/// when made and removed when the value goes out of scope, whether the test passed or
/// panicked: the tests leave nothing behind.
pub struct TempDir(PathBuf);

impl TempDir {
    /// The folder for `name`.
    pub fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("tinyvae-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}
