//! `snakepit doctor` and `snakepit setup`: the library's checks and venv
//! setup, printed for a person.

use std::path::{Path, PathBuf};
use std::time::Instant;

use snakepit::config::ConfigFile;
use snakepit::doctor::{self, Check};

use crate::Failure;

/// Runs every check on the configuration at `path` (or on the default
/// interpreter alone), printing each as it finishes.
pub(crate) fn doctor(path: Option<PathBuf>) -> Result<(), Failure> {
    let mut outcomes = Vec::new();
    let mut show = |check: &Check| {
        print_check(check);
        outcomes.push(check.passed);
    };
    let config = match path {
        Some(path) => match ConfigFile::load(&path) {
            Ok(config) => {
                let names: Vec<&str> = config.pools().iter().map(|p| p.name()).collect();
                show(&Check::pass(
                    "configuration",
                    format!("{} (pools: {})", path.display(), names.join(", ")),
                ));
                print_options(&config);
                Some(config)
            }
            Err(e) => {
                show(&Check::fail(
                    "configuration",
                    e.to_string(),
                    "correct the file; the message names the key and what it takes",
                ));
                None
            }
        },
        None => {
            println!(
                "no configuration (--config, $SNAKEPIT_CONFIG or ./snakepit.toml): \
                 checking the default interpreter only"
            );
            None
        }
    };
    doctor::run(config.as_ref(), &mut show);
    let failed = outcomes.iter().filter(|passed| !**passed).count();
    if failed == 0 {
        println!("all {} checks passed", outcomes.len());
        Ok(())
    } else {
        Err(Failure::Failed(format!(
            "{failed} of {} checks failed",
            outcomes.len()
        )))
    }
}

/// Every option of every pool as the pool will run with it, defaults
/// included, written as the file writes them (`none` where unset): what
/// to read when a pool does not behave as the file seems to say.
fn print_options(config: &ConfigFile) {
    for pool in config.pools() {
        println!("      [pools.{}] in effect:", pool.name());
        for (key, value) in pool.options() {
            println!("        {key} = {value}");
        }
    }
}

/// `ok  name: detail`, the detail's further lines indented under it, then
/// the fix.
fn print_check(check: &Check) {
    let mark = if check.passed { "ok  " } else { "FAIL" };
    let mut lines = check.detail.lines();
    println!("{mark}  {}: {}", check.name, lines.next().unwrap_or(""));
    for line in lines {
        println!("        {line}");
    }
    if let Some(fix) = &check.fix {
        println!("      fix: {fix}");
    }
}

/// Makes the virtual environment, pip's progress on stderr, and prints its
/// interpreter on stdout (for `$(snakepit setup)`).
pub(crate) fn setup(base_python: Option<&Path>) -> Result<(), Failure> {
    let started = Instant::now();
    let python = doctor::setup(base_python, |line| eprintln!("  {line}"))
        .map_err(|e| Failure::Failed(format!("setup failed: {e}")))?;
    eprintln!("done in {:.1?}", started.elapsed());
    println!("{}", python.display());
    for var in ["SNAKEPIT_PYTHON", "VIRTUAL_ENV"] {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            eprintln!(
                "note: {var} is set, and pools use it before this environment; \
                 unset it to use {}",
                python.display()
            );
        }
    }
    Ok(())
}
