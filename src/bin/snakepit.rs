//! `snakepit`: run, inspect and diagnose pools from the command line.
//!
//! See `snakepit help`. Arguments are parsed by hand: the crate keeps its
//! dependency list short.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use serde_json::Value;
use snakepit::config::{parse_duration, ConfigFile};
use snakepit::doctor::{self, Check};
use snakepit::{CallOptions, Pool, PoolBuilder};

const USAGE: &str = "\
snakepit: run, inspect and diagnose pools of Python workers

usage:
  snakepit doctor [--config FILE]
      check the interpreter, grpcio and protobuf, each configured adapter and
      the socket directory; print a fix for each failure
  snakepit setup [--python PYTHON]
      create snakepit's virtual environment ($SNAKEPIT_VENV, default
      ~/.cache/snakepit/venv) and install the worker's requirements in it
  snakepit call [--config FILE] [--pool NAME | --adapter CLASS] [--timeout DURATION]
                [--out FILE] TOOL [JSON]
      call TOOL once with the JSON object of arguments (default {}) and print
      the result; --out writes it (bytes or JSON) to FILE instead
  snakepit tools [--config FILE] [--pool NAME | --adapter CLASS]
      list the adapter's tools and their parameters
  snakepit new-adapter NAME [--dir DIR]
      write NAME.py (an adapter with one tool), test_NAME.py and, when there
      is none, snakepit.toml with a pool for it
  snakepit help | --version

The configuration is --config FILE, else $SNAKEPIT_CONFIG, else ./snakepit.toml.
`call` and `tools` start one worker of the pool (--pool, needed when the file
has several). RUST_LOG sets the log level (e.g. RUST_LOG=snakepit=debug).
";

/// Why a command did not succeed.
enum Failure {
    /// The command line is wrong: print the usage, exit 2.
    Usage(String),
    /// The command failed: exit 1.
    Failed(String),
}

impl From<snakepit::Error> for Failure {
    fn from(e: snakepit::Error) -> Self {
        Failure::Failed(e.to_string())
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "doctor" => doctor_command(rest),
        "setup" => setup_command(rest),
        "call" => call_command(rest),
        "tools" => tools_command(rest),
        "new-adapter" => new_adapter_command(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        "--version" | "-V" => {
            println!("snakepit {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command `{other}`"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("snakepit: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("snakepit: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A command's arguments: options that take a value, and the rest.
struct Args {
    options: Vec<(&'static str, String)>,
    positional: Vec<String>,
}

impl Args {
    /// Splits `args` into the `allowed` options (`--name VALUE` or
    /// `--name=VALUE`) and positional arguments; `--` ends the options.
    fn parse(args: &[String], allowed: &[&'static str]) -> Result<Args, Failure> {
        let mut parsed = Args {
            options: Vec::new(),
            positional: Vec::new(),
        };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if arg == "--" {
                parsed.positional.extend(iter.cloned());
                break;
            }
            let Some(option) = arg.strip_prefix("--") else {
                parsed.positional.push(arg.clone());
                continue;
            };
            let (name, inline) = match option.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (option, None),
            };
            let Some(&name) = allowed.iter().find(|a| **a == name) else {
                return Err(Failure::Usage(format!("unknown option `--{name}`")));
            };
            let value = match inline {
                Some(value) => value,
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| Failure::Usage(format!("`--{name}` needs a value")))?,
            };
            if parsed.get(name).is_some() {
                return Err(Failure::Usage(format!("`--{name}` given twice")));
            }
            parsed.options.push((name, value));
        }
        Ok(parsed)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The positional arguments, checked to be between `min` and `max`.
    fn positional(&self, min: usize, max: usize, what: &str) -> Result<&[String], Failure> {
        let n = self.positional.len();
        if n < min || n > max {
            return Err(Failure::Usage(format!("expected {what}")));
        }
        Ok(&self.positional)
    }
}

/// The configuration file to use: `--config`, `$SNAKEPIT_CONFIG`, or
/// `./snakepit.toml` when it exists.
fn config_path(args: &Args) -> Option<PathBuf> {
    if let Some(path) = args.get("config") {
        return Some(PathBuf::from(path));
    }
    if let Some(path) = std::env::var_os("SNAKEPIT_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let local = PathBuf::from("snakepit.toml");
    local.is_file().then_some(local)
}

fn doctor_command(args: &[String]) -> Result<(), Failure> {
    let args = Args::parse(args, &["config"])?;
    args.positional(0, 0, "no arguments besides --config")?;
    let mut checks_shown = Vec::new();
    let mut show = |check: &Check| {
        print_check(check);
        checks_shown.push(check.passed);
    };
    let config = match config_path(&args) {
        Some(path) => match ConfigFile::load(&path) {
            Ok(config) => {
                let names: Vec<&str> = config.pools().iter().map(|p| p.name()).collect();
                show(&Check::pass(
                    "configuration",
                    format!("{} (pools: {})", path.display(), names.join(", ")),
                ));
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
    let failed = checks_shown.iter().filter(|passed| !**passed).count();
    if failed == 0 {
        println!("all {} checks passed", checks_shown.len());
        Ok(())
    } else {
        Err(Failure::Failed(format!(
            "{failed} of {} checks failed",
            checks_shown.len()
        )))
    }
}

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

fn setup_command(args: &[String]) -> Result<(), Failure> {
    let args = Args::parse(args, &["python"])?;
    args.positional(0, 0, "no arguments besides --python")?;
    let started = Instant::now();
    let python = doctor::setup(args.get("python").map(Path::new), |line| {
        eprintln!("  {line}");
    })
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

/// Starts one worker of the pool the arguments name, showing progress.
fn start_one_worker(args: &Args) -> Result<Pool, Failure> {
    let (label, builder): (String, PoolBuilder) = match args.get("adapter") {
        Some(adapter) => {
            if args.get("config").is_some() || args.get("pool").is_some() {
                return Err(Failure::Usage(
                    "--adapter runs that adapter alone: give it without --config and --pool".into(),
                ));
            }
            (
                format!("adapter {adapter}"),
                Pool::builder().adapter(adapter),
            )
        }
        None => {
            let path = config_path(args).ok_or_else(|| {
                Failure::Failed(
                    "no configuration: pass --config FILE, set SNAKEPIT_CONFIG, create \
                     ./snakepit.toml (see `snakepit new-adapter`), or name an adapter with \
                     --adapter CLASS"
                        .into(),
                )
            })?;
            let config = ConfigFile::load(&path)?;
            let pool = match args.get("pool") {
                Some(name) => config.pool(name)?,
                None => match config.pools() {
                    [only] => only,
                    pools => {
                        let names: Vec<&str> = pools.iter().map(|p| p.name()).collect();
                        return Err(Failure::Usage(format!(
                            "{} has several pools ({}): choose one with --pool NAME",
                            path.display(),
                            names.join(", ")
                        )));
                    }
                },
            };
            (
                format!("pool {} ({})", pool.name(), pool.adapter()),
                pool.builder(),
            )
        }
    };
    eprintln!("starting one worker of {label}...");
    let started = Instant::now();
    let pool = builder.workers(1).build()?;
    eprintln!("ready in {:.1?}", started.elapsed());
    // Ctrl-C stops the worker with the command.
    let for_signal = pool.clone();
    let _ = ctrlc::set_handler(move || {
        for_signal.shutdown();
        std::process::exit(130);
    });
    Ok(pool)
}

fn call_command(args: &[String]) -> Result<(), Failure> {
    let args = Args::parse(args, &["config", "pool", "adapter", "out", "timeout"])?;
    let positional = args.positional(1, 2, "TOOL and, optionally, its arguments as JSON")?;
    let tool = &positional[0];
    let arguments: Value = match positional.get(1) {
        Some(text) => serde_json::from_str(text).map_err(|e| {
            Failure::Usage(format!("the arguments are not valid JSON ({e}): {text}"))
        })?,
        None => Value::Object(Default::default()),
    };
    if !arguments.is_object() {
        return Err(Failure::Usage(format!(
            "the arguments must be a JSON object of keyword arguments, \
             e.g. '{{\"a\": 1}}'; got {arguments}"
        )));
    }
    let mut options = CallOptions::new();
    if let Some(text) = args.get("timeout") {
        let timeout = parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "--timeout {text}: expected a duration such as 500ms, 30s or 5m"
                ))
            })?;
        options = options.timeout(timeout);
    }

    let pool = start_one_worker(&args)?;
    let reply = pool.execute_blocking_with(tool, arguments, options);
    pool.shutdown();
    let reply = reply?;
    match (reply.binary, args.get("out")) {
        (Some(bytes), Some(out)) => {
            write(out, &bytes)?;
            eprintln!("wrote {} bytes to {out}", bytes.len());
        }
        (Some(bytes), None) => {
            return Err(Failure::Failed(format!(
                "the result is {} bytes: write them to a file with --out FILE",
                bytes.len()
            )))
        }
        (None, Some(out)) => {
            let text = serde_json::to_string_pretty(&reply.value).expect("a Value serialises");
            write(out, format!("{text}\n").as_bytes())?;
            eprintln!("wrote the result to {out}");
        }
        (None, None) => {
            let text = serde_json::to_string_pretty(&reply.value).expect("a Value serialises");
            println!("{text}");
        }
    }
    Ok(())
}

fn write(path: &str, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| Failure::Failed(format!("cannot write {path}: {e}")))
}

fn tools_command(args: &[String]) -> Result<(), Failure> {
    let args = Args::parse(args, &["config", "pool", "adapter"])?;
    args.positional(0, 0, "no arguments besides the options")?;
    let pool = start_one_worker(&args)?;
    let tools = pool.tools();
    pool.shutdown();
    for tool in tools? {
        let streaming = if tool.supports_streaming {
            " [streaming]"
        } else {
            ""
        };
        println!("{}{streaming}", tool.signature());
        if !tool.description.is_empty() {
            println!("    {}", tool.description);
        }
        for p in tool.parameters.iter().filter(|p| !p.description.is_empty()) {
            println!("      {}: {}", p.name, p.description);
        }
    }
    Ok(())
}

fn new_adapter_command(args: &[String]) -> Result<(), Failure> {
    let args = Args::parse(args, &["dir"])?;
    let name = &args.positional(1, 1, "the adapter's module name, e.g. text_tools")?[0];
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !PYTHON_KEYWORDS.contains(&name.as_str());
    if !valid {
        return Err(Failure::Usage(format!(
            "{name:?} is not a usable module name: expected lowercase letters, digits and '_', \
             starting with a letter, and not a Python keyword"
        )));
    }
    let class = format!(
        "{}Adapter",
        name.split('_')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut chars = part.chars();
                let first = chars.next().map(|c| c.to_ascii_uppercase());
                first.into_iter().chain(chars).collect::<String>()
            })
            .collect::<String>()
    );
    let dir = PathBuf::from(args.get("dir").unwrap_or("."));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let module_file = dir.join(format!("{name}.py"));
    let test_file = dir.join(format!("test_{name}.py"));
    for file in [&module_file, &test_file] {
        if file.exists() {
            return Err(Failure::Failed(format!(
                "{} exists; not overwriting it",
                file.display()
            )));
        }
    }
    let fill = |template: &str| {
        template
            .replace("__NAME__", name)
            .replace("__CLASS__", &class)
    };
    let create = |path: &Path, text: String| {
        std::fs::write(path, text)
            .map_err(|e| Failure::Failed(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
        Ok::<(), Failure>(())
    };
    create(&module_file, fill(ADAPTER_TEMPLATE))?;
    create(&test_file, fill(TEST_TEMPLATE))?;
    let config_file = dir.join("snakepit.toml");
    let pool_table = fill(CONFIG_TEMPLATE);
    if config_file.exists() {
        println!(
            "{} exists: add this pool to it:\n\n{pool_table}",
            config_file.display()
        );
    } else {
        create(&config_file, pool_table)?;
    }
    let bridge = doctor::worker_files_dir()
        .map_err(|e| Failure::Failed(format!("cannot write the worker's Python files: {e}")))?;
    println!("\nnext, in {}:", dir.display());
    println!("  test the tool in-process:");
    println!(
        "    PYTHONPATH={} python3 -m unittest test_{name}",
        bridge.display()
    );
    println!("  call it through a pool, and list the tools:");
    println!("    snakepit call greet '{{\"name\": \"Ada\"}}'");
    println!("    snakepit tools");
    Ok(())
}

const PYTHON_KEYWORDS: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
    "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
];

const ADAPTER_TEMPLATE: &str = r#""""__NAME__: a snakepit adapter.

A snakepit pool runs this class in its Python worker processes. From Rust:

    pool.execute_blocking("greet", json!({"name": "Ada"}))?

From a shell, with the pool in snakepit.toml:

    snakepit call greet '{"name": "Ada"}'
"""

from __future__ import annotations

from snakepit_bridge import BaseAdapter, tool


class __CLASS__(BaseAdapter):
    """The tools of __NAME__.

    The worker makes a new instance for every call: initialize(), the tool,
    then cleanup(). State that must outlive a call belongs at module level
    (loaded once per process) or in the session store
    (self.session_context.store).

    This adapter runs one call at a time per process (profile = "process").
    To run several at once in one process (profile = "thread"), derive from
    snakepit_bridge.ThreadSafeAdapter instead and make the tools safe to run
    concurrently.
    """

    def initialize(self) -> None:
        """Runs before each call: acquire what the tools need."""

    def cleanup(self) -> None:
        """Runs after each call, even one that failed: release it."""

    @tool(description="Greets someone by name")
    def greet(self, name: str, punctuation: str = "!") -> str:
        """Returns a greeting.

        The call's JSON object becomes the keyword arguments, checked against
        this signature before the tool runs: a missing or unknown argument
        fails the call with InvalidArguments. The type hints and the Args
        section below are what `snakepit tools` shows. The return value goes
        back as JSON (bytes go back as binary); an exception goes back as
        Error::Python with its class, message and traceback.

        Args:
            name: who to greet.
            punctuation: what ends the greeting.
        """
        return f"Hello, {name}{punctuation}"
"#;

const TEST_TEMPLATE: &str = r#""""Tests of __NAME__'s tools, run in-process (no pool, no gRPC).

snakepit_bridge must be importable: `snakepit new-adapter` prints the
PYTHONPATH to use. Then: python3 -m unittest test___NAME__
"""

import unittest

from snakepit_bridge import InvalidArgumentsError

from __NAME__ import __CLASS__


class GreetTest(unittest.TestCase):
    def setUp(self) -> None:
        self.adapter = __CLASS__()
        self.adapter.initialize()

    def tearDown(self) -> None:
        self.adapter.cleanup()

    def test_greets_by_name(self) -> None:
        # execute_tool is what the worker calls, with the call's arguments.
        self.assertEqual(self.adapter.execute_tool("greet", {"name": "Ada"}), "Hello, Ada!")
        arguments = {"name": "Ada", "punctuation": "?"}
        self.assertEqual(self.adapter.execute_tool("greet", arguments), "Hello, Ada?")

    def test_a_missing_argument_is_refused_before_the_tool_runs(self) -> None:
        with self.assertRaises(InvalidArgumentsError):
            self.adapter.execute_tool("greet", {})

    def test_the_tool_is_listed_with_its_parameters(self) -> None:
        tools = {tool.name: tool for tool in self.adapter.get_tools()}
        self.assertEqual([p.name for p in tools["greet"].parameters], ["name", "punctuation"])


if __name__ == "__main__":
    unittest.main()
"#;

const CONFIG_TEMPLATE: &str = r#"# A pool of the __NAME__ adapter. Every key is described in snakepit's README
# ("Configuration"); `snakepit doctor` checks this file.
[pools.__NAME__]
adapter = "__NAME__.__CLASS__"
python_path = ["."]        # where __NAME__.py is, relative to this file
workers = 2
profile = "process"
call_timeout = "60s"
"#;
