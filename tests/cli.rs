//! The `snakepit` command, run as an operator would: `doctor` passing and
//! failing, `call` printing a result, `tools`, `new-adapter`, and the
//! errors of a bad command line or a bad configuration.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
        // The options in effect, defaults included, as the file writes them.
        "[pools.compute] in effect:",
        "workers = 4",
        "[pools.io] in effect:",
        "threads = 8",
        "max_requests = \"off\"",
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

/// `--transport` picks the pool's transport, over the configuration file's
/// `transport`: a worker on the socket transport never imports grpc.
#[test]
fn call_runs_on_the_transport_chosen() {
    let scope = Scope::new("cli-transport");
    let grpc_imported = |args: &[&str]| {
        let mut all = vec!["call"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["imported", r#"{"module": "grpc"}"#]);
        let out = snakepit(&scope, &all);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(grpc_imported(&["--adapter", SHOWCASE]), "true\n");
    assert_eq!(
        grpc_imported(&["--adapter", SHOWCASE, "--transport", "socket"]),
        "false\n"
    );
    let config = write_config(
        &scope,
        "socket.toml",
        &format!("[pools.fast]\nadapter = \"{SHOWCASE}\"\ntransport = \"socket\"\n"),
    );
    assert_eq!(grpc_imported(&["--config", arg(&config)]), "false\n");
    assert_eq!(
        grpc_imported(&["--config", arg(&config), "--transport", "grpc"]),
        "true\n"
    );
    let out = snakepit(
        &scope,
        &["call", "--adapter", SHOWCASE, "--transport", "tcp", "ping"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("expected grpc or socket"),
        "{}",
        stderr(&out)
    );
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
    assert!(
        stderr(&out).contains("Usage: snakepit call"),
        "{}",
        stderr(&out)
    );

    // A wrong command line: exit 2, saying what is wrong, before anything starts.
    for (args, says) in [
        (&["frobnicate"][..], "unrecognized subcommand 'frobnicate'"),
        (&["call"], "<TOOL>"),
        (
            &["call", "--adapter", SHOWCASE, "add", "{not json"],
            "the arguments are not valid JSON",
        ),
        (
            &["call", "--adapter", SHOWCASE, "add", "[1, 2]"],
            "the arguments must be a JSON object",
        ),
        (
            &["call", "--bogus", "x", "add"],
            "unexpected argument '--bogus'",
        ),
        (
            &["call", "--adapter", SHOWCASE, "--timeout", "5", "add"],
            "expected a duration such as 500ms, 30s or 5m",
        ),
        (
            &["call", "--adapter", SHOWCASE, "--config", "x.toml", "add"],
            "'--adapter <CLASS>' cannot be used with '--config <FILE>'",
        ),
        (
            &["call", "--pool", "a", "--pool", "b", "add"],
            "'--pool <NAME>' cannot be used multiple times",
        ),
        (
            &["new-adapter", "Not-A-Module"],
            "\"Not-A-Module\" is not a usable module name",
        ),
    ] {
        let out = snakepit(&scope, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("starting one worker"),
            "{args:?}: nothing started"
        );
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

#[test]
fn help_version_and_shell_completions_describe_every_command() {
    let scope = Scope::new("cli-help");
    let out = snakepit(&scope, &["--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for command in [
        "doctor",
        "setup",
        "call",
        "tools",
        "new-adapter",
        "completions",
    ] {
        assert!(
            stdout(&out).contains(&format!("\n  {command} ")),
            "{command}"
        );
    }
    assert!(stdout(&out).contains("$SNAKEPIT_CONFIG, else ./snakepit.toml"));

    let out = snakepit(&scope, &["help", "call"]);
    assert!(out.status.success());
    for option in ["--timeout <DURATION>", "--out <FILE>", "--adapter <CLASS>"] {
        assert!(stdout(&out).contains(option), "{option}: {}", stdout(&out));
    }

    let out = snakepit(&scope, &["--version"]);
    assert_eq!(
        stdout(&out),
        format!("snakepit {}\n", env!("CARGO_PKG_VERSION"))
    );

    for (shell, marker) in [
        ("bash", "_snakepit()"),
        ("zsh", "#compdef snakepit"),
        ("fish", "complete -c snakepit"),
    ] {
        let out = snakepit(&scope, &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}");
        assert!(script.contains("new-adapter"), "{shell}");
    }

    // The bash script installs a completion when sourced.
    let file = scope.path("snakepit.bash");
    std::fs::write(&file, stdout(&snakepit(&scope, &["completions", "bash"]))).unwrap();
    let sourced = Command::new("bash")
        .args(["-c", "source \"$0\" && complete -p snakepit"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(sourced.status.success(), "{}", stderr(&sourced));
    assert!(
        stdout(&sourced).contains("-F _snakepit"),
        "{}",
        stdout(&sourced)
    );
}

#[test]
fn ctrl_c_stops_the_worker_with_the_command() {
    let scope = Scope::new("cli-ctrl-c");
    let config = write_config(
        &scope,
        "slow.toml",
        &format!("[pools.slow]\nadapter = \"{SHOWCASE}\"\nshutdown_grace = \"200ms\"\n"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .args([
            "call",
            "--config",
            arg(&config),
            "sleep",
            r#"{"ms": 60000}"#,
        ])
        .current_dir(&scope.dir)
        .env("SNAKEPIT_TEST_TAG", &scope.tag)
        .env_remove("SNAKEPIT_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut progress = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("ready in") {
        let read = progress.read_line(&mut seen).unwrap();
        assert!(
            read > 0,
            "snakepit ended before its worker was ready: {seen}"
        );
    }
    let worker_runs = scope.live_processes().iter().any(|&pid| pid != child.id());
    assert!(worker_runs, "the worker runs");

    // SAFETY: plain syscall on the child this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let mut rest = String::new();
    let _ = progress.read_to_string(&mut rest);
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    scope.assert_no_processes();
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
