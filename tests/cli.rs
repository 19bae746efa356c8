//! The `snakepit` command, run as an operator would: `doctor` passing and
//! failing, `call` printing a result, `tools`, `new-adapter`, and the
//! errors of a bad command line or a bad configuration.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Scope, SHOWCASE, THREADED_SHOWCASE};

/// The `snakepit` binary, run in the scope's directory, its workers tagged
/// with the scope's tag, untouched by the caller's snakepit variables.
fn snakepit(scope: &Scope, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .args(args)
        .current_dir(&scope.dir)
        .env("SNAKEPIT_TEST_TAG", &scope.tag)
        .env_remove("SNAKEPIT_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("running snakepit");
    scope.assert_no_processes();
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write_config(scope: &Scope, name: &str, text: &str) -> PathBuf {
    let path = scope.path(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn showcase_config(scope: &Scope) -> PathBuf {
    write_config(
        scope,
        "showcase.toml",
        &format!(
            r#"
            [pools.compute]
            adapter = "{SHOWCASE}"
            workers = 4

            [pools.io]
            adapter = "{THREADED_SHOWCASE}"
            profile = "thread"
            threads = 8
            "#
        ),
    )
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn doctor_passes_on_a_working_configuration() {
    let scope = Scope::new("cli-doctor-ok");
    let config = showcase_config(&scope);
    let out = snakepit(&scope, &["doctor", "--config", arg(&config)]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for line in [
        "ok    configuration:",
        "ok    python (pool compute, io):",
        "ok    grpcio (pool compute, io):",
        "ok    protobuf (pool compute, io):",
        "ok    adapter of pool compute: snakepit_showcase.adapter.ShowcaseAdapter imports",
        "ok    adapter of pool io: snakepit_showcase.adapter.ThreadedShowcaseAdapter imports",
        "ok    socket directory:",
        "checks passed",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn doctor_fails_naming_each_problem_and_its_fix() {
    let scope = Scope::new("cli-doctor-fail");
    let config = write_config(
        &scope,
        "broken.toml",
        &format!(
            r#"
            [pools.good]
            adapter = "{SHOWCASE}"

            [pools.broken]
            adapter = "snakepit_showcase.broken.BrokenAdapter"

            [pools.elsewhere]
            adapter = "my_pkg.adapters.MyAdapter"
            python_path = ["lib"]

            [pools.unsafe]
            adapter = "{SHOWCASE}"
            profile = "thread"
            threads = 4

            [pools.nopython]
            adapter = "{SHOWCASE}"
            python = "/nonexistent/bin/python3"
            "#
        ),
    );
    let out = snakepit(&scope, &["doctor", "--config", arg(&config)]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for line in [
        "ok    adapter of pool good",
        "FAIL  adapter of pool broken: snakepit_showcase.broken raised while being imported",
        "ImportError: showcase: this adapter is broken on purpose",
        "FAIL  adapter of pool elsewhere: no module named \"my_pkg\"",
        "add the directory that holds `my_pkg` to python_path in [pools.elsewhere]",
        "FAIL  adapter of pool unsafe: snakepit_showcase.adapter.ShowcaseAdapter is not marked thread-safe",
        "FAIL  python (pool nopython): cannot run /nonexistent/bin/python3",
        "fix: install Python 3.8 or newer",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(stderr(&out).contains("checks failed"), "{}", stderr(&out));

    // A missing interpreter alone fails the run without a configuration.
    let out = Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .arg("doctor")
        .current_dir(&scope.dir)
        .env("SNAKEPIT_PYTHON", "/nonexistent/python3")
        .env_remove("SNAKEPIT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("FAIL  python: cannot run /nonexistent/python3"));
}

#[test]
fn call_prints_the_result_as_json() {
    let scope = Scope::new("cli-call");
    let config = showcase_config(&scope);
    let config = arg(&config);

    let out = snakepit(
        &scope,
        &[
            "call",
            "--config",
            config,
            "--pool",
            "compute",
            "add",
            r#"{"a": 1, "b": 2}"#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "3\n");
    assert!(stderr(&out).contains("starting one worker of pool compute"));

    let out = snakepit(
        &scope,
        &[
            "call",
            "--config",
            config,
            "--pool=io",
            "echo",
            r#"{"value": {"k": [1, "two", null]}}"#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(value, serde_json::json!({"k": [1, "two", null]}));

    // Bytes go to a file.
    let bytes_file = scope.path("bytes.bin");
    let out = snakepit(
        &scope,
        &[
            "call",
            "--adapter",
            SHOWCASE,
            "--out",
            arg(&bytes_file),
            "make_bytes",
            r#"{"n": 300}"#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&bytes_file).unwrap();
    assert_eq!(bytes.len(), 300);
    assert_eq!(bytes[257], 1);

    // A Python exception fails the command with the exception.
    let out = snakepit(
        &scope,
        &[
            "call",
            "--adapter",
            SHOWCASE,
            "raise_error",
            r#"{"kind": "KeyError", "message": "nope"}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Python raised KeyError"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn tools_lists_the_tools_with_their_parameters() {
    let scope = Scope::new("cli-tools");
    let config = showcase_config(&scope);
    let out = snakepit(&scope, &["tools", "--config", arg(&config), "--pool", "io"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("add(a: float, b: float)\n    Adds two numbers\n"),
        "{text}"
    );
    assert!(
        text.contains("raise_error(kind: str = \"ValueError\""),
        "{text}"
    );
    assert!(
        text.contains("count_stream(n: int, delay_ms: int = 0) [streaming]"),
        "{text}"
    );
    assert!(text.contains("thread_id()"), "{text}");
}

#[test]
fn a_bad_configuration_or_command_line_is_reported_before_anything_starts() {
    let scope = Scope::new("cli-bad");
    let config = write_config(
        &scope,
        "bad.toml",
        "[pools.p]\nadapter = \"m.A\"\nworkers = \"four\"\n",
    );
    let out = snakepit(&scope, &["call", "--config", arg(&config), "ping"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("pools.p.workers = \"four\": expected an integer from 1 to 4096"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("starting"), "nothing started");

    let several = showcase_config(&scope);
    let out = snakepit(&scope, &["call", "--config", arg(&several), "ping"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("has several pools (compute, io): choose one with --pool NAME"));

    for args in [
        &["frobnicate"][..],
        &["call"],
        &["call", "--adapter", SHOWCASE, "add", "{not json"],
        &["call", "--adapter", SHOWCASE, "add", "[1, 2]"],
        &["call", "--bogus", "x", "add"],
        &["call", "--adapter", SHOWCASE, "--timeout", "5", "add"],
        &["new-adapter", "Not-A-Module"],
    ] {
        let out = snakepit(&scope, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("usage:"), "{args:?}");
    }

    // No configuration anywhere: say where one is looked for.
    let out = snakepit(&scope, &["call", "ping"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no configuration: pass --config FILE"));
}

#[test]
fn new_adapter_writes_a_skeleton_that_passes_its_test_and_serves() {
    let scope = Scope::new("cli-new");
    let out = snakepit(&scope, &["new-adapter", "text_tools"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for file in ["text_tools.py", "test_text_tools.py", "snakepit.toml"] {
        assert!(scope.path(file).is_file(), "{file} written");
    }

    // Its test passes, run the way the command says.
    let bridge = snakepit::doctor::worker_files_dir().unwrap();
    let test = Command::new("python3")
        .args(["-m", "unittest", "-q", "test_text_tools"])
        .current_dir(&scope.dir)
        .env("PYTHONPATH", &bridge)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(test.status.success(), "{}", stderr(&test));
    assert!(stderr(&test).contains("Ran 3 tests"), "{}", stderr(&test));

    // The snakepit.toml it wrote is found and serves the tool.
    let out = snakepit(&scope, &["call", "greet", r#"{"name": "Ada"}"#]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "\"Hello, Ada!\"\n");
    let out = snakepit(&scope, &["tools"]);
    assert!(stdout(&out)
        .contains("greet(name: str, punctuation: str = \"!\")\n    Greets someone by name"));
    let out = snakepit(&scope, &["doctor"]);
    assert!(out.status.success(), "{}", stdout(&out));

    // It never overwrites.
    let out = snakepit(&scope, &["new-adapter", "text_tools"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exists; not overwriting it"));
}

/// Creates a virtual environment and installs grpcio and protobuf from the
/// package index (pip's cache makes repeated runs quick).
#[test]
fn setup_creates_a_venv_the_pools_then_use() {
    let scope = Scope::new("cli-setup");
    let venv = scope.path("venv");
    let out = Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .arg("setup")
        .env("SNAKEPIT_VENV", &venv)
        .env_remove("SNAKEPIT_PYTHON")
        .env_remove("VIRTUAL_ENV")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let python = venv.join("bin").join("python");
    assert_eq!(stdout(&out).trim(), python.to_str().unwrap());
    assert!(stderr(&out).contains("creating a virtual environment"));

    // doctor now finds that interpreter by default.
    let out = Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .arg("doctor")
        .current_dir(&scope.dir)
        .env("SNAKEPIT_VENV", &venv)
        .env_remove("SNAKEPIT_PYTHON")
        .env_remove("VIRTUAL_ENV")
        .env_remove("SNAKEPIT_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("ok    python: {}", python.display())));
}
