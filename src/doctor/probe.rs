//! Running a short-lived Python (or pip) process for a check or for setup:
//! its environment, a time limit, and its output, whole or line by line.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::launcher::local::python_path;

/// `python` with `path` first on `PYTHONPATH`, ahead of the caller's own.
pub(super) fn python_command(python: &Path, path: &[PathBuf]) -> Command {
    let mut cmd = Command::new(python);
    if let Ok(joined) = python_path(path.iter().cloned()) {
        cmd.env("PYTHONPATH", joined);
    }
    // A check must leave no trace in the user's source directories.
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// What a finished probe printed.
pub(super) struct Output {
    /// Whether it exited with status 0.
    pub(super) success: bool,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Runs `cmd` to completion, or kills it after `timeout` (an import that
/// hangs must not hang the doctor).
pub(super) fn run_with_timeout(mut cmd: Command, timeout: Duration) -> io::Result<Output> {
    let mut child = spawn_piped(&mut cmd)?;
    let stdout = read_all(child.stdout.take().map(boxed));
    let stderr = read_all(child.stderr.take().map(boxed));
    let deadline = crate::deadline::later(Instant::now(), timeout);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            success: status.success(),
            stdout,
            stderr,
        }),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer after {timeout:?}"),
        )),
    }
}

/// Runs `cmd`, handing each line of its stdout and stderr to `progress` as
/// it comes (pip is slow: the user sees it work). A failure carries the
/// last lines, which usually say why.
pub(super) fn stream(mut cmd: Command, progress: &mut impl FnMut(&str)) -> io::Result<()> {
    let mut child = spawn_piped(&mut cmd)?;
    let (tx, rx) = mpsc::channel::<String>();
    let streams = [
        child.stdout.take().map(boxed),
        child.stderr.take().map(boxed),
    ];
    let readers: Vec<_> = streams
        .into_iter()
        .flatten()
        .map(|stream| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            })
        })
        .collect();
    // The loop below ends when both readers have dropped their senders.
    drop(tx);
    let mut tail = Vec::new();
    for line in rx {
        progress(&line);
        tail.push(line);
        if tail.len() > 5 {
            tail.remove(0);
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{status}; last output:\n{}",
            tail.join("\n")
        )))
    }
}

/// The last `n` non-empty lines of `text`, for a report.
pub(super) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

fn spawn_piped(cmd: &mut Command) -> io::Result<Child> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

fn boxed(stream: impl Read + Send + 'static) -> Box<dyn Read + Send> {
    Box::new(stream)
}

/// Reads a pipe to its end on a thread of its own, so a child that fills
/// one pipe never blocks while we read the other.
fn read_all(stream: Option<Box<dyn Read + Send>>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stream {
            let _ = s.read_to_string(&mut text);
        }
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_skips_blank_ones() {
        assert_eq!(last_lines("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(last_lines("", 3), "");
    }

    #[test]
    fn a_probe_that_outlives_its_time_limit_is_killed() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let started = Instant::now();
        let err = run_with_timeout(cmd, Duration::from_millis(50))
            .err()
            .expect("timed out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_failing_stream_reports_its_last_lines() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one; echo two >&2; exit 3"]);
        let mut seen = Vec::new();
        let err = stream(cmd, &mut |line: &str| seen.push(line.to_owned())).unwrap_err();
        seen.sort();
        assert_eq!(seen, ["one", "two"]);
        assert!(err.to_string().contains("exit status: 3"), "{err}");
    }
}
