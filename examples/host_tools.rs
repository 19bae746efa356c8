//! Host tools: Python tools that call Rust closures.
//!
//! Registers four host tools, then has the showcase adapter's `call_host`
//! tool call them from Python: one that computes, one that fails, one that
//! calls back into the pool to run a Python tool on another worker, and one
//! that takes and returns bytes (`call_host_binary`).
//!
//! Run with `cargo run --release --example host_tools`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use snakepit::{CallOptions, Error, HostOutput, Pool};

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();

    // State the host keeps for Python: a small key-value store.
    let store: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    let store_put = store.clone();

    let pool = Pool::builder()
        .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
        .workers(2)
        .host_tool(
            "put",
            "Stores value under key; returns the previous value",
            move |args| {
                let key = args["key"].as_str().ok_or("key must be a string")?;
                let previous = store_put
                    .lock()
                    .unwrap()
                    .insert(key.to_owned(), args["value"].clone());
                Ok(previous.unwrap_or(Value::Null))
            },
        )
        .host_tool("checked_sqrt", "Square root of a non-negative x", |args| {
            let x = args["x"].as_f64().ok_or("x must be a number")?;
            if x < 0.0 {
                return Err(format!("cannot take the square root of {x}"));
            }
            Ok(json!(x.sqrt()))
        })
        .host_tool_with_pool(
            "add_on_another_worker",
            "Runs the Python tool `add` through the pool",
            |pool, args| {
                pool.execute_blocking("add", args)
                    .map_err(|e| e.to_string())
            },
        )
        .host_tool_binary("rot13", "ROT13 of the bytes in data, as bytes", |args| {
            let rotate = |b: u8, base: u8| (b - base + 13) % 26 + base;
            let data = args.bytes("data")?;
            let out = data.iter().map(|&b| match b {
                b'a'..=b'z' => rotate(b, b'a'),
                b'A'..=b'Z' => rotate(b, b'A'),
                _ => b,
            });
            Ok(HostOutput::Bytes(out.collect()))
        })
        .build()?;
    // Ctrl-C shuts the pool down cleanly: no worker outlives the program.
    pool.shutdown_on_ctrl_c()?;

    // What Python sees: `self.session_context.host_tools()`.
    let listed = pool.execute_blocking("list_host_tools", json!(null))?;
    println!(
        "Python lists {} host tools:",
        listed.as_array().map_or(0, Vec::len)
    );
    for tool in listed.as_array().into_iter().flatten() {
        println!(
            "  {:<24} {}",
            tool["name"].as_str().unwrap_or(""),
            tool["description"].as_str().unwrap_or("")
        );
    }

    // Python calls `self.session_context.call_host_tool(name, **arguments)`.
    let call_host = |name: &str, arguments: Value| {
        pool.execute_blocking("call_host", json!({"name": name, "arguments": arguments}))
    };

    call_host("put", json!({"key": "answer", "value": 41}))?;
    let previous = call_host("put", json!({"key": "answer", "value": 42}))?;
    println!(
        "put(answer, 42)            -> previous {previous}; host store now {:?}",
        store.lock().unwrap()
    );

    let root = call_host("checked_sqrt", json!({"x": 2.0}))?;
    println!("checked_sqrt(2.0)          -> {root}");

    match call_host("checked_sqrt", json!({"x": -1.0})) {
        Err(Error::Python { class, message, .. }) => {
            println!("checked_sqrt(-1.0)         -> Python raised {class}: {message}")
        }
        other => panic!("expected a RuntimeError from Python, got {other:?}"),
    }

    let sum = call_host("add_on_another_worker", json!({"a": 20, "b": 22}))?;
    println!("add_on_another_worker(...) -> {sum} (Python -> Rust -> Python)");

    // Bytes both ways: Rust -> Python (a binary argument), Python -> Rust
    // (`call_host_tool("rot13", data=...)`), and back as bytes.
    let reply = pool.execute_blocking_with(
        "call_host_binary",
        json!({"name": "rot13"}),
        CallOptions::new().binary("data", b"Hello, snakepit".to_vec()),
    )?;
    let rotated = reply.binary.unwrap_or_default();
    println!(
        "rot13(b\"Hello, snakepit\")  -> b{:?} (bytes both ways)",
        String::from_utf8_lossy(&rotated)
    );

    let stats = pool.stats();
    println!(
        "{} calls succeeded, {} failed",
        stats.succeeded, stats.failed
    );
    pool.shutdown();
    Ok(())
}
