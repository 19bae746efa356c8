//! `snakepit call` and `snakepit tools`: one worker of a pool, started for
//! one request and stopped after it.

use std::path::Path;
use std::time::Instant;

use snakepit::config::ConfigFile;
use snakepit::{CallOptions, Pool, PoolBuilder};

use crate::{CallArgs, Failure, PoolArgs};

/// Calls the tool and prints the result, or writes it to `--out`.
pub(crate) fn call(args: CallArgs) -> Result<(), Failure> {
    let mut options = CallOptions::new();
    if let Some(timeout) = args.timeout {
        options = options.timeout(timeout);
    }
    let pool = start_one_worker(&args.pool)?;
    let reply = pool.execute_blocking_with(&args.tool, args.arguments, options);
    pool.shutdown();
    let reply = reply?;
    match (reply.binary, args.out.as_deref()) {
        (Some(bytes), Some(out)) => {
            write(out, &bytes)?;
            eprintln!("wrote {} bytes to {}", bytes.len(), out.display());
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
            eprintln!("wrote the result to {}", out.display());
        }
        (None, None) => {
            let text = serde_json::to_string_pretty(&reply.value).expect("a Value serialises");
            println!("{text}");
        }
    }
    Ok(())
}

/// Prints each tool's signature, description and parameter descriptions.
pub(crate) fn tools(args: &PoolArgs) -> Result<(), Failure> {
    let pool = start_one_worker(args)?;
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

/// Starts one worker of the pool the arguments name, showing progress on
/// stderr. Ctrl-C then stops it with the command.
fn start_one_worker(args: &PoolArgs) -> Result<Pool, Failure> {
    let (label, mut builder) = chosen_pool(args)?;
    if let Some(transport) = args.transport {
        builder = builder.transport(transport);
    }
    eprintln!("starting one worker of {label}...");
    let started = Instant::now();
    let pool = builder.workers(1).build()?;
    // Before "ready": from then on, Ctrl-C is safe.
    if let Err(e) = pool.shutdown_on_ctrl_c() {
        log::warn!("Ctrl-C would leave the worker running: {e}");
    }
    eprintln!("ready in {:.1?}", started.elapsed());
    Ok(pool)
}

/// The pool `--adapter`, or `--pool` of the configuration file, describes,
/// and how to name it in progress messages.
fn chosen_pool(args: &PoolArgs) -> Result<(String, PoolBuilder), Failure> {
    if let Some(adapter) = &args.adapter {
        return Ok((
            format!("adapter {adapter}"),
            Pool::builder().adapter(adapter),
        ));
    }
    let path = args.config.path().ok_or_else(|| {
        Failure::Failed(
            "no configuration: pass --config FILE, set SNAKEPIT_CONFIG, create \
             ./snakepit.toml (see `snakepit new-adapter`), or name an adapter with \
             --adapter CLASS"
                .into(),
        )
    })?;
    let config = ConfigFile::load(&path)?;
    let pool = match &args.pool {
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
    Ok((
        format!("pool {} ({})", pool.name(), pool.adapter()),
        pool.builder(),
    ))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes)
        .map_err(|e| Failure::Failed(format!("cannot write {}: {e}", path.display())))
}
