//! Virtualenvs of pinned Python packages from PyPI, cached (`hack/python-env.sh`).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

/// `hack/python-env.sh <name> <requirements>`: the venv's path; it must hold `bin/<binary>`.
/// Fails, saying what it needs, when the venv cannot be prepared.
pub fn python_env(name: &str, requirements: &Path, binary: &str) -> PathBuf {
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/python-env.sh"))
        .arg(name)
        .arg(requirements)
        .stderr(Stdio::inherit())
        .output()
        .expect("running hack/python-env.sh");
    assert!(
        output.status.success(),
        "hack/python-env.sh could not prepare the {name} virtualenv ({}); it needs python3 with venv and PyPI",
        output.status
    );
    let venv = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert!(venv.join("bin").join(binary).is_file(), "{} has no bin/{binary}", venv.display());
    eprintln!("virtualenv {} ready in {:.1?}", venv.display(), started.elapsed());
    venv
}
