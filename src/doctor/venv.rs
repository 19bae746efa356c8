//! The virtual environment `snakepit setup` makes: the usual fix for an
//! interpreter without `grpcio` or `protobuf`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::probe::{last_lines, python_command, run_with_timeout, stream};
use super::QUICK;
use crate::python;

/// Where `snakepit setup` puts its virtual environment: `$SNAKEPIT_VENV`,
/// else `venv` in snakepit's cache directory (`~/.cache/snakepit/venv`).
/// Pools use its interpreter when it exists, unless `PoolBuilder::python`,
/// `SNAKEPIT_PYTHON` or an active virtual environment says otherwise.
///
/// ```
/// let dir = snakepit::doctor::venv_dir();
/// assert!(dir.ends_with("venv") || std::env::var_os("SNAKEPIT_VENV").is_some());
/// ```
pub fn venv_dir() -> PathBuf {
    python::venv_dir()
}

/// Creates the virtual environment at [`venv_dir`] with `base_python`
/// (`python3` when `None`), unless it exists, and installs the worker's
/// requirements (grpcio, protobuf) into it. Hands each step and each line
/// pip prints to `progress`. Returns the environment's interpreter.
///
/// ```no_run
/// // Downloads packages: not run as a doc test.
/// let python = snakepit::doctor::setup(None, |line| eprintln!("  {line}"))?;
/// println!("pools now run on {}", python.display());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn setup(base_python: Option<&Path>, mut progress: impl FnMut(&str)) -> io::Result<PathBuf> {
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    let base = base_python.unwrap_or(Path::new("python3"));
    let files = python::worker_files()?;
    let requirements = files.join("requirements.txt");

    if python.exists() {
        progress(&format!(
            "using the virtual environment at {}",
            dir.display()
        ));
    } else {
        create(base, &dir, &mut progress)?;
    }

    progress(&format!("installing {} into it", requirements.display()));
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-r",
    ])
    .arg(&requirements);
    stream(cmd, &mut progress)
        .map_err(|e| io::Error::other(format!("installing the requirements failed: {e}")))?;

    progress("checking that grpcio and protobuf import");
    let mut cmd = python_command(&python, &[files]);
    cmd.arg("-c")
        .arg("import grpc, google.protobuf, snakepit_bridge.protocol");
    match run_with_timeout(cmd, QUICK) {
        Ok(out) if out.success => Ok(python),
        Ok(out) => Err(io::Error::other(format!(
            "the packages installed but do not import:\n{}",
            last_lines(&out.stderr, 3)
        ))),
        Err(e) => Err(e),
    }
}

/// `base -m venv dir`, with the likely cause when it fails.
fn create(base: &Path, dir: &Path, progress: &mut impl FnMut(&str)) -> io::Result<()> {
    progress(&format!(
        "creating a virtual environment at {} with {}",
        dir.display(),
        base.display()
    ));
    let mut cmd = Command::new(base);
    cmd.arg("-m").arg("venv").arg(dir);
    stream(cmd, progress).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::NotFound {
            "install Python 3, or name an interpreter with --python"
        } else {
            "on Debian or Ubuntu, `apt-get install python3-venv` provides the venv module"
        };
        io::Error::other(format!(
            "{} -m venv {} failed: {e} ({hint})",
            base.display(),
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_base_interpreter_names_the_fix() {
        let dir = std::env::temp_dir().join(format!("snakepit-venv-test-{}", std::process::id()));
        let err = create(Path::new("/nonexistent/python3"), &dir, &mut |_| {}).unwrap_err();
        assert!(
            err.to_string()
                .contains("name an interpreter with --python"),
            "{err}"
        );
        assert!(!dir.exists());
    }
}
