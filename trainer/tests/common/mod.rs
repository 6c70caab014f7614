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

/// Runs the `trainer` binary on one thread: (success, standard output, standard error).
#[allow(dead_code)] // not every test file runs the binary
pub fn run_trainer(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["--threads", "1"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The tests' run of `arch`: BCE, beta 1, no warm-up, Adam at 1e-3, batches of 64, on the
/// bundled subset.
#[allow(dead_code)] // not every test file trains
pub fn config(
    arch: tinyvae_trainer::model::Arch,
    epochs: usize,
    seed: u64,
) -> tinyvae_trainer::train::Config {
    tinyvae_trainer::train::Config {
        arch,
        recon: tinyvae_trainer::model::Recon::Bce,
        beta: 1.0,
        warmup_epochs: 0,
        noise: None,
        lr: 1e-3,
        batch: 64,
        epochs,
        seed,
        dataset: "mnist-subset".into(),
        train_images: None,
        data: None,
    }
}
