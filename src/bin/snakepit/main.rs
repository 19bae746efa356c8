//! `snakepit`: run, inspect and diagnose pools from the command line.
//!
//! Built with the `cli` feature (`cargo install --path . --features cli`).
//! This file is the command line itself; each command lives in its own
//! module.

mod diagnose;
mod new_adapter;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use clap_complete::Shell;
use serde_json::Value;
use snakepit::Transport;

const AFTER_HELP: &str = "\
The configuration is --config FILE, else $SNAKEPIT_CONFIG, else ./snakepit.toml.
The interpreter is SNAKEPIT_PYTHON, else the active virtual environment, else
the one `snakepit setup` made, else python3 on PATH (or python = \"...\" in a
pool of the file). RUST_LOG sets the log level, e.g. RUST_LOG=snakepit=debug.

Examples:
  snakepit new-adapter text_tools && snakepit call greet '{\"name\": \"Ada\"}'
  snakepit doctor --config snakepit.toml
  snakepit completions bash > ~/.local/share/bash-completion/completions/snakepit";

/// Run, inspect and diagnose pools of Python workers.
#[derive(Parser)]
#[command(name = "snakepit", version, after_help = AFTER_HELP, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that workers can start; print a fix for each failure.
    ///
    /// Checks that the worker's Python files can be written, that each
    /// interpreter the pools use runs and is Python 3.8 or newer, that
    /// grpcio and protobuf import in it, that each pool's adapter imports
    /// with the pool's python_path and environment (and is thread-safe for
    /// the thread profile), and that a private socket directory can be made.
    /// Exits with status 1 when a check fails.
    Doctor {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Create snakepit's virtual environment with the worker's packages.
    ///
    /// Creates $SNAKEPIT_VENV (default ~/.cache/snakepit/venv) with
    /// `python3 -m venv`, unless it exists, and installs grpcio and protobuf
    /// into it. Pools then use it unless SNAKEPIT_PYTHON or an active virtual
    /// environment says otherwise. Prints the environment's interpreter.
    Setup {
        /// The interpreter that creates the environment [default: python3].
        #[arg(long, value_name = "PYTHON")]
        python: Option<PathBuf>,
    },
    /// Call a tool once and print its result as JSON.
    ///
    /// Starts one worker of the pool, calls TOOL with the JSON object of
    /// keyword arguments, prints the result and stops the worker. A result
    /// of bytes must go to a file (--out).
    Call(CallArgs),
    /// List the adapter's tools and their parameters.
    ///
    /// Starts one worker of the pool and asks it for its tools: each with
    /// its signature, description and parameter descriptions; streaming
    /// tools are marked [streaming].
    Tools(PoolArgs),
    /// Write a new adapter, its test and a snakepit.toml to start from.
    ///
    /// Writes NAME.py (an adapter with one tool), test_NAME.py and, when
    /// there is none, snakepit.toml with a pool for it. Never overwrites a
    /// file.
    NewAdapter {
        /// The adapter's module name: lowercase letters, digits and '_',
        /// e.g. text_tools.
        #[arg(value_parser = new_adapter::parse_module_name)]
        name: String,
        /// The directory to write the files to.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Print a shell completion script.
    ///
    /// For bash: snakepit completions bash > ~/.local/share/bash-completion/completions/snakepit
    Completions {
        /// The shell to complete in.
        shell: Shell,
    },
}

/// Which configuration file to read.
#[derive(Args)]
struct ConfigArg {
    /// The configuration file [default: $SNAKEPIT_CONFIG, else ./snakepit.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Which pool to start one worker of.
#[derive(Args)]
struct PoolArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The pool of the configuration file (needed when it has several).
    #[arg(long, value_name = "NAME")]
    pool: Option<String>,
    /// Run this adapter class ("module.Class") alone, without a
    /// configuration file.
    #[arg(long, value_name = "CLASS", conflicts_with_all = ["config", "pool"])]
    adapter: Option<String>,
    /// How to talk to the worker: grpc or socket [default: the pool's
    /// transport, else grpc].
    #[arg(long, value_name = "TRANSPORT", value_parser = parse_transport)]
    transport: Option<Transport>,
}

/// What `call` calls, and where the result goes.
#[derive(Args)]
struct CallArgs {
    #[command(flatten)]
    pool: PoolArgs,
    /// The call's timeout, e.g. 500ms, 30s or 5m [default: the pool's
    /// call_timeout].
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Write the result (bytes, or JSON) to FILE instead of printing it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The tool to call.
    tool: String,
    /// The tool's keyword arguments, as a JSON object.
    #[arg(value_name = "JSON", default_value = "{}", value_parser = parse_arguments)]
    arguments: Value,
}

/// Why a command did not succeed.
enum Failure {
    /// The command line asks for something impossible: print the message
    /// with the command's usage, exit 2 (as clap does for its own errors).
    Usage(String),
    /// The command failed: exit 1.
    Failed(String),
    /// Ctrl-C shut the pool down under the command, whose call then ended
    /// with `ShuttingDown`: the handler exits 130 once the workers are
    /// gone, so wait for it rather than race it with another status.
    Interrupted(String),
}

/// How long an interrupted command waits for the Ctrl-C handler to finish
/// the shutdown and exit; only a handler stuck past every grace period
/// takes this long.
const HANDLER_EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl From<snakepit::Error> for Failure {
    fn from(e: snakepit::Error) -> Self {
        // Only the Ctrl-C handler shuts a command's pool down.
        if matches!(e, snakepit::Error::ShuttingDown) {
            Failure::Interrupted(e.to_string())
        } else {
            Failure::Failed(e.to_string())
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Doctor { config } => diagnose::doctor(config.path()),
        Command::Setup { python } => diagnose::setup(python.as_deref()),
        Command::Call(args) => run::call(args),
        Command::Tools(args) => run::tools(&args),
        Command::NewAdapter { name, dir } => new_adapter::write(&name, &dir),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "snakepit",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            let mut command = Cli::command();
            command.build();
            let name = matches.subcommand_name().expect("a command ran");
            let command = command
                .find_subcommand_mut(name)
                .expect("the command that ran is a subcommand");
            let error = command.error(clap::error::ErrorKind::ArgumentConflict, message);
            let _ = error.print();
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("snakepit: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Interrupted(message)) => {
            eprintln!("snakepit: {message}");
            std::thread::sleep(HANDLER_EXIT_WAIT);
            ExitCode::from(130)
        }
    }
}

impl ConfigArg {
    /// The configuration file to use: `--config`, `$SNAKEPIT_CONFIG`, or
    /// `./snakepit.toml` when it exists.
    fn path(&self) -> Option<PathBuf> {
        if let Some(path) = &self.config {
            return Some(path.clone());
        }
        if let Some(path) = std::env::var_os("SNAKEPIT_CONFIG").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(path));
        }
        let local = PathBuf::from("snakepit.toml");
        local.is_file().then_some(local)
    }
}

/// `--timeout`: a duration as the configuration file writes it, not zero
/// and at most [`snakepit::MAX_DURATION`].
fn parse_transport(text: &str) -> Result<Transport, String> {
    match text {
        "grpc" => Ok(Transport::Grpc),
        "socket" => Ok(Transport::Socket),
        _ => Err(format!("expected grpc or socket, got {text:?}")),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = snakepit::config::parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "expected a duration such as 500ms, 30s or 5m".to_owned())?;
    if d > snakepit::MAX_DURATION {
        return Err(format!(
            "must be at most {}h (100 years)",
            snakepit::MAX_DURATION.as_secs() / 3600
        ));
    }
    Ok(d)
}

/// A call's arguments: a JSON object, whose keys become keyword arguments.
fn parse_arguments(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("the arguments are not valid JSON ({e})"))?;
    if !value.is_object() {
        return Err(format!(
            "the arguments must be a JSON object of keyword arguments, e.g. '{{\"a\": 1}}'; \
             got {value}"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn arguments_must_be_a_json_object() {
        assert_eq!(
            parse_arguments(r#"{"a": 1}"#),
            Ok(serde_json::json!({"a": 1}))
        );
        assert!(parse_arguments("[1, 2]")
            .unwrap_err()
            .contains("JSON object"));
        assert!(parse_arguments("{not json")
            .unwrap_err()
            .contains("not valid JSON"));
    }

    #[test]
    fn a_timeout_needs_a_unit_and_is_not_zero() {
        assert_eq!(parse_timeout("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_timeout("5").is_err());
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("876600h").is_ok());
        assert!(parse_timeout("876601h").is_err());
        assert!(parse_timeout("3000000000000000h").is_err());
    }
}
