//! Host tools: Python tools calling Rust closures through the host's
//! callback server, on real Python workers; and a worker script that
//! follows the Snakepit contract.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_serves, Scope};
use serde_json::{json, Value};
use snakepit::{Error, HostOutput, Profile};

/// Calls host tool `name` from Python (the showcase tool `call_host`).
fn call_host(pool: &snakepit::Pool, name: &str, arguments: Value) -> Result<Value, Error> {
    pool.execute_blocking("call_host", json!({"name": name, "arguments": arguments}))
}

fn python_error(err: Error) -> (String, String) {
    match err {
        Error::Python { class, message, .. } => (class, message),
        other => panic!("expected a Python error, got {other:?}"),
    }
}

fn python_calls_a_rust_closure_and_uses_its_result() {
    let scope = Scope::new("hosttool");
    let threads = Arc::new(Mutex::new(Vec::new()));
    let seen = threads.clone();
    let pool = scope
        .builder()
        .workers(1)
        .host_tool("describe", "Describes its arguments", move |args| {
            seen.lock()
                .unwrap()
                .push(std::thread::current().name().unwrap_or("").to_owned());
            let n = args["n"].as_i64().ok_or("n must be an integer")?;
            Ok(json!({
                "double": n * 2,
                "half": n as f64 / 2.0,
                "label": format!("{}-{n}", args["label"].as_str().unwrap_or("?")),
                "echo": args,
            }))
        })
        .build()
        .unwrap();

    let args =
        json!({"n": 21, "label": "x", "nested": [1, "two", null, {"k": true}], "big": i64::MAX});
    let result = call_host(&pool, "describe", args.clone()).unwrap();
    assert_eq!(result["double"], json!(42));
    assert!(result["double"].is_i64(), "integers stay integers");
    assert_eq!(result["half"], json!(10.5));
    assert_eq!(result["label"], json!("x-21"));
    assert_eq!(result["echo"], args, "arguments reach the closure intact");

    // Closures run on the host's own threads, not gRPC's.
    let names = threads.lock().unwrap().clone();
    assert_eq!(names.len(), 1);
    assert!(
        names[0].starts_with("snakepit-host-tool-"),
        "ran on {names:?}"
    );

    scope.finish(&pool);
}

fn a_closure_error_raises_runtime_error_in_python() {
    let scope = Scope::new("hosterr");
    let pool = scope
        .builder()
        .workers(1)
        .host_tool("refuse", "Always fails", |args| {
            Err(format!("refused {}", args["what"].as_str().unwrap_or("")))
        })
        .build()
        .unwrap();

    let (class, message) =
        python_error(call_host(&pool, "refuse", json!({"what": "the job"})).unwrap_err());
    assert_eq!(class, "RuntimeError");
    assert_eq!(message, "refused the job");

    let (class, message) =
        python_error(call_host(&pool, "no_such_host_tool", json!({})).unwrap_err());
    assert_eq!(class, "RuntimeError");
    assert!(
        message.contains("no host tool named `no_such_host_tool`"),
        "{message}"
    );
    assert!(
        message.contains("refuse"),
        "lists the host tools: {message}"
    );

    scope.finish(&pool);
}

fn host_tools_run_concurrently_on_the_host_tool_threads() {
    let scope = Scope::new("hostconc");
    // A rendezvous: each call waits until all four are inside at once.
    let arrived = Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
    let gate = arrived.clone();
    let pool = scope
        .threaded_builder(4)
        .workers(1)
        .host_tool_threads(4)
        .host_tool("rendezvous", "Returns once 4 calls are in", move |_| {
            let (count, changed) = &*gate;
            let mut n = count.lock().unwrap();
            *n += 1;
            changed.notify_all();
            let (n, timeout) = changed
                .wait_timeout_while(n, Duration::from_secs(10), |n| *n < 4)
                .unwrap();
            if timeout.timed_out() {
                return Err(format!("only {} calls arrived", *n));
            }
            Ok(json!(std::thread::current()
                .name()
                .unwrap_or("")
                .to_owned()))
        })
        .build()
        .unwrap();

    let calls: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || call_host(&pool, "rendezvous", json!({})))
        })
        .collect();
    let mut threads: Vec<String> = calls
        .into_iter()
        .map(|c| c.join().unwrap().unwrap().as_str().unwrap().to_owned())
        .collect();
    threads.sort();
    threads.dedup();
    assert_eq!(threads.len(), 4, "four host tool threads: {threads:?}");

    scope.finish(&pool);
}

fn many_concurrent_host_tool_calls_all_get_their_replies() {
    let scope = Scope::new("hoststress");
    let total = Arc::new(AtomicUsize::new(0));
    let counter = total.clone();
    let pool = scope
        .threaded_builder(4)
        .workers(2)
        .host_tool("inc", "Adds 1 to n", move |args| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(json!(args["n"].as_i64().ok_or("n must be an integer")? + 1))
        })
        .build()
        .unwrap();

    let callers: Vec<_> = (0..8)
        .map(|c| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let n = c * 1000 + i;
                    assert_eq!(
                        call_host(&pool, "inc", json!({"n": n})).unwrap(),
                        json!(n + 1)
                    );
                }
            })
        })
        .collect();
    for caller in callers {
        caller.join().unwrap();
    }
    assert_eq!(total.load(Ordering::SeqCst), 200);
    assert_eq!(pool.stats().failed, 0);

    scope.finish(&pool);
}

fn a_panicking_closure_is_an_error_and_the_host_keeps_serving() {
    let scope = Scope::new("hostpanic");
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let pool = scope
        .builder()
        .workers(1)
        .host_tool_threads(1)
        .host_tool("explode", "Panics", |_| panic!("kaboom {}", 42))
        .host_tool("count", "Counts its calls", move |_| {
            Ok(json!(counted.fetch_add(1, Ordering::SeqCst) + 1))
        })
        .build()
        .unwrap();

    for _ in 0..3 {
        let (class, message) = python_error(call_host(&pool, "explode", json!({})).unwrap_err());
        assert_eq!(class, "RuntimeError");
        assert_eq!(message, "host tool `explode` panicked: kaboom 42");
    }
    // The one host tool thread survived its panics; Python and the pool too.
    assert_eq!(call_host(&pool, "count", json!({})).unwrap(), json!(1));
    assert_eq!(
        pool.execute_blocking("add", json!({"a": 1, "b": 2}))
            .unwrap(),
        json!(3)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(pool.stats().restarts, 0);

    scope.finish(&pool);
}

fn a_closure_calls_back_into_the_pool_without_deadlock() {
    let scope = Scope::new("hostnested");
    let pool = scope
        .builder()
        .workers(2)
        .host_tool_with_pool(
            "sum_in_python",
            "Adds a and b with the Python tool",
            |pool, args| {
                let pid = pool
                    .execute_blocking("pid", json!(null))
                    .map_err(|e| e.to_string())?;
                let sum = pool
                    .execute_blocking("add", args)
                    .map_err(|e| e.to_string())?;
                Ok(json!({"sum": sum, "pid": pid}))
            },
        )
        .build()
        .unwrap();

    let outer_pids: Vec<Value> = pool
        .stats()
        .per_worker
        .iter()
        .map(|w| json!(w.pid.unwrap()))
        .collect();
    for i in 0..5 {
        let started = Instant::now();
        let result = call_host(&pool, "sum_in_python", json!({"a": i, "b": 100})).unwrap();
        assert_eq!(result["sum"], json!(i + 100));
        assert!(outer_pids.contains(&result["pid"]));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    let stats = pool.stats();
    assert_eq!(
        stats.succeeded, 15,
        "5 outer calls, each with 2 nested ones"
    );
    assert_eq!(stats.load, 0);

    scope.finish(&pool);
}

fn a_nested_call_with_no_free_worker_waits_only_until_its_queue_timeout() {
    let scope = Scope::new("hostfull");
    let pool = scope
        .builder()
        .workers(1)
        .queue_timeout(Duration::from_millis(300))
        .host_tool_with_pool("nested", "Calls the pool", |pool, _| {
            pool.execute_blocking("ping", json!(null))
                .map_err(|e| e.to_string())
        })
        .build()
        .unwrap();

    let started = Instant::now();
    let (class, message) = python_error(call_host(&pool, "nested", json!({})).unwrap_err());
    assert_eq!(class, "RuntimeError");
    assert!(message.contains("waited"), "a queue timeout: {message}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The only worker is free again.
    assert_eq!(
        pool.execute_blocking("ping", json!(null)).unwrap(),
        json!("pong")
    );

    scope.finish(&pool);
}

fn python_lists_the_host_tools() {
    let scope = Scope::new("hostlist");
    let pool = scope
        .builder()
        .workers(1)
        .host_tool("first", "The first tool", |_| Ok(json!(1)))
        .host_tool_with_pool("second", "The second tool", |_, _| Ok(json!(2)))
        .build()
        .unwrap();

    let listed = pool
        .execute_blocking("list_host_tools", json!(null))
        .unwrap();
    assert_eq!(
        listed,
        json!([
            {"name": "first", "description": "The first tool", "supports_streaming": false},
            {"name": "second", "description": "The second tool", "supports_streaming": false},
        ])
    );

    scope.finish(&pool);
}

/// Without host tools the callback server still runs (every worker
/// registers its tools with it), and a host tool call fails at once with a
/// message that says there are none.
fn without_host_tools_a_host_tool_call_fails_clearly_and_tools_are_registered() {
    let scope = Scope::new("hostnone");
    let pool = scope.builder().workers(1).build().unwrap();
    let (class, message) = python_error(call_host(&pool, "anything", json!({})).unwrap_err());
    assert_eq!(class, "RuntimeError");
    assert!(
        message.contains("no host tool named `anything`: the host has no host tools"),
        "{message}"
    );
    let registered = pool.registered_tools();
    assert!(
        registered
            .iter()
            .any(|t| t.worker == "worker-0" && t.name == "call_host"),
        "{registered:?}"
    );
    assert_serves(&pool);
    scope.finish(&pool);
}

fn a_host_tool_does_not_keep_its_pool_alive() {
    let scope = Scope::new("hostweak");
    let pool = scope
        .builder()
        .workers(1)
        .host_tool_with_pool("ping_pool", "Pings through the pool", |pool, _| {
            Ok(json!(pool.stats().workers))
        })
        .build()
        .unwrap();
    assert_eq!(call_host(&pool, "ping_pool", json!({})).unwrap(), json!(1));
    assert!(!scope.live_processes().is_empty());
    // Dropping the last handle shuts the pool down: the host tool's handle
    // is weak.
    drop(pool);
    scope.assert_no_processes();
}

fn a_host_tool_holding_the_last_handle_shuts_the_pool_down_on_its_thread() {
    let scope = Scope::new("hostlast");
    let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
    let pool = scope
        .builder()
        .workers(1)
        .host_tool_with_pool("linger", "Outlives its caller", move |pool, _| {
            let _ = entered_tx.send(());
            std::thread::sleep(Duration::from_millis(800));
            Ok(json!(pool.stats().workers))
        })
        .build()
        .unwrap();
    let caller = pool.clone();
    let call = std::thread::spawn(move || {
        caller.execute_blocking_with(
            "call_host",
            json!({"name": "linger"}),
            snakepit::CallOptions::new().timeout(Duration::from_millis(300)),
        )
    });
    entered_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(matches!(call.join().unwrap(), Err(Error::Timeout { .. })));
    // The host tool now holds the only strong handle; when it returns, the
    // pool shuts down on the host tool's own thread.
    drop(pool);
    assert!(
        common::wait_until(Duration::from_secs(20), || scope
            .live_processes()
            .is_empty()),
        "processes left behind: {:?}",
        scope.live_processes()
    );
}

fn a_host_tool_may_shut_its_pool_down() {
    let scope = Scope::new("hoststop");
    let pool = scope
        .builder()
        .workers(1)
        .shutdown_grace(Duration::from_millis(300))
        .host_tool_with_pool("stop_pool", "Shuts the pool down", |pool, _| {
            pool.shutdown();
            Ok(json!("stopped"))
        })
        .build()
        .unwrap();
    let started = Instant::now();
    // The worker running the call is stopped under it.
    let err = call_host(&pool, "stop_pool", json!({})).unwrap_err();
    assert!(
        matches!(err, Error::ShuttingDown | Error::WorkerCrashed { .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        pool.execute_blocking("ping", json!(null)),
        Err(Error::ShuttingDown)
    ));
    scope.finish(&pool);
}

fn shutdown_waits_for_a_running_host_tool_only_for_the_grace_period() {
    let scope = Scope::new("hostslow");
    let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
    let pool = scope
        .builder()
        .workers(1)
        .shutdown_grace(Duration::from_millis(200))
        .host_tool("slow", "Takes its time", move |_| {
            let _ = entered_tx.send(());
            std::thread::sleep(Duration::from_secs(4));
            Ok(json!("late"))
        })
        .build()
        .unwrap();
    let caller = pool.clone();
    let call = std::thread::spawn(move || call_host(&caller, "slow", json!({})));
    entered_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let started = Instant::now();
    pool.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(call.join().unwrap().is_err());
    scope.assert_no_processes();
}

fn builder_rejects_bad_host_options() {
    let scope = Scope::new("hostopts");
    let err = scope
        .builder()
        .host_tool("twice", "", |_| Ok(json!(1)))
        .host_tool("twice", "", |_| Ok(json!(2)))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                option: "host_tool",
                ..
            }
        ),
        "{err:?}"
    );
    let err = scope.builder().host_tool_threads(0).build().unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                option: "host_tool_threads",
                ..
            }
        ),
        "{err:?}"
    );
    let err = scope
        .builder()
        .worker_script("tests/no_such_script.py")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                option: "worker_script",
                ..
            }
        ),
        "{err:?}"
    );
    scope.assert_no_processes();
}

/// The contract worker script (test data in this directory) and what it
/// imports from the crate's Python package.
fn contract_builder(scope: &Scope) -> snakepit::PoolBuilder {
    let root = env!("CARGO_MANIFEST_DIR");
    scope
        .builder()
        .adapter("contract.Adapter")
        .worker_script(format!("{root}/tests/contract_worker.py"))
        .python_path(format!("{root}/python"))
}

// A worker script speaks gRPC only (the socket transport refuses one).
#[test]
fn a_snakepit_contract_worker_script_runs_under_the_pool() {
    let scope = Scope::new("contract");
    let pool = contract_builder(&scope)
        .workers(2)
        .host_tool("shape", "Describes each argument's JSON type", |args| {
            let obj = args.as_object().ok_or("expected an object")?;
            Ok(obj
                .iter()
                .map(|(k, v)| {
                    let kind = match v {
                        Value::String(_) => "string",
                        Value::Number(n) if n.is_f64() => "float",
                        Value::Number(_) => "integer",
                        _ => "other",
                    };
                    (k.clone(), json!([kind, v]))
                })
                .collect())
        })
        .build()
        .unwrap();

    assert_eq!(
        pool.execute_blocking("add", json!({"a": 2, "b": 40}))
            .unwrap(),
        json!(42)
    );

    // Launched with the contract's flags only, and the host's address.
    let me = pool.execute_blocking("whoami", json!(null)).unwrap();
    assert_eq!(me["adapter"], json!("contract.Adapter"));
    assert_eq!(me["port"], json!(0));
    assert!(me["elixir_address"].as_str().unwrap().starts_with("unix:"));
    assert!(me["elixir_address"]
        .as_str()
        .unwrap()
        .ends_with("/host.sock"));
    assert_eq!(me["max_workers"], Value::Null);
    assert!(!me["argv"].as_array().unwrap().contains(&json!("--socket")));

    // It registered its tools at start-up, each worker under its id.
    let registered = pool.registered_tools();
    for worker in ["worker-0", "worker-1"] {
        let mut names: Vec<&str> = registered
            .iter()
            .filter(|t| t.worker == worker)
            .map(|t| t.name.as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["add", "call_host", "whoami"],
            "{worker}: {registered:?}"
        );
    }
    let add = registered.iter().find(|t| t.name == "add").unwrap();
    assert_eq!(add.description, "Adds a and b");

    // It opened a session on the host before its calls.
    let sessions: Vec<String> = pool.host_sessions().into_iter().map(|s| s.id).collect();
    let worker = me["worker_id"].as_str().unwrap();
    assert!(
        sessions.contains(&format!("{worker}-default")),
        "{sessions:?}"
    );

    // Host tools, with Snakepit's argument encoding: strings as packed
    // StringValues (a nine-digit one included), numbers as JSON Values.
    let shapes = call_host(
        &pool,
        "shape",
        json!({"word": "hello", "digits": "123456789", "empty": "", "int": 7, "float": 2.5}),
    )
    .unwrap();
    assert_eq!(
        shapes,
        json!({
            "word": ["string", "hello"],
            "digits": ["string", "123456789"],
            "empty": ["string", ""],
            "int": ["integer", 7],
            "float": ["float", 2.5],
        })
    );

    scope.finish(&pool);
}

// A worker script speaks gRPC only (the socket transport refuses one).
#[test]
fn a_contract_worker_script_gets_max_workers_in_the_thread_profile() {
    let scope = Scope::new("contract-thread");
    let pool = contract_builder(&scope)
        .workers(1)
        .profile(Profile::Thread { threads: 3 })
        .build()
        .unwrap();
    let me = pool.execute_blocking("whoami", json!(null)).unwrap();
    assert_eq!(me["max_workers"], json!(3));
    assert_eq!(pool.registered_tools().len(), 3);
    scope.finish(&pool);
}

/// Calls host tool `name` from Python with `data` as a bytes argument (the
/// showcase tool `call_host_binary`); returns the reply, whose `binary` is
/// the host tool's bytes result.
fn call_host_binary(
    pool: &snakepit::Pool,
    name: &str,
    data: Vec<u8>,
    arguments: Value,
) -> Result<snakepit::Reply, Error> {
    pool.execute_blocking_with(
        "call_host_binary",
        json!({"name": name, "arguments": arguments}),
        snakepit::CallOptions::new().binary("data", data),
    )
}

fn host_tools_take_and_return_bytes_both_ways_within_the_message_limit() {
    let scope = Scope::new("hostbin");
    let limit = 4 << 20;
    let pool = scope
        .builder()
        .workers(1)
        .max_message_bytes(limit)
        .host_tool_binary("xor", "XORs data with key", |args| {
            let key = args.json["key"].as_u64().ok_or("key must be a byte")? as u8;
            Ok(HostOutput::Bytes(
                args.bytes("data")?.iter().map(|b| b ^ key).collect(),
            ))
        })
        .host_tool_binary("inflate", "Returns n bytes", |args| {
            let n = args.json["n"].as_u64().ok_or("n must be a count")?;
            Ok(HostOutput::Bytes(vec![7; n as usize]))
        })
        .host_tool_binary("length", "The length of data, as JSON", |args| {
            Ok(HostOutput::Json(json!(args.bytes("data")?.len())))
        })
        .host_tool("json_only", "Takes JSON", Ok)
        .build()
        .unwrap();

    // Every byte value, both ways, and a payload near the limit.
    let data: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
    let reply = call_host_binary(&pool, "xor", data.clone(), json!({"key": 0x5a})).unwrap();
    let expected: Vec<u8> = data.iter().map(|b| b ^ 0x5a).collect();
    assert_eq!(reply.binary.as_deref(), Some(expected.as_slice()));

    // Empty bytes stay bytes.
    let reply = call_host_binary(&pool, "xor", Vec::new(), json!({"key": 1})).unwrap();
    assert_eq!(reply.binary.as_deref(), Some(&[][..]), "{reply:?}");

    // A JSON result of a binary tool is JSON.
    let reply = call_host_binary(&pool, "length", vec![0; 1000], json!({})).unwrap();
    assert_eq!(reply.value, json!(1000));

    // Over the limit: a result the host will not send, arguments Python
    // will not send; each a clear error, and the pool serves on.
    let (class, message) = python_error(
        call_host_binary(&pool, "inflate", Vec::new(), json!({"n": limit + 1})).unwrap_err(),
    );
    assert_eq!(class, "RuntimeError");
    assert!(
        message.contains("host tool `inflate` returned")
            && message.contains(&format!("over the pool's message limit of {limit} bytes")),
        "{message}"
    );
    let half = vec![1u8; limit / 2 + 1];
    let (class, message) = python_error(
        pool.execute_blocking_with(
            "call_host_binary",
            json!({"name": "xor", "arguments": {"key": 1}, "repeat": 2}),
            snakepit::CallOptions::new().binary("data", half),
        )
        .unwrap_err(),
    );
    assert_eq!(class, "ValueError");
    assert!(message.contains("over the message limit"), "{message}");

    // A JSON host tool refuses bytes, naming the argument.
    let (class, message) =
        python_error(call_host_binary(&pool, "json_only", vec![1], json!({})).unwrap_err());
    assert_eq!(class, "RuntimeError");
    assert!(message.contains("`data` is bytes"), "{message}");

    let reply = call_host_binary(&pool, "xor", vec![1, 2], json!({"key": 3})).unwrap();
    assert_eq!(reply.binary, Some(vec![2, 1]));
    scope.finish(&pool);
}

both_transports!(
    python_calls_a_rust_closure_and_uses_its_result,
    a_closure_error_raises_runtime_error_in_python,
    host_tools_run_concurrently_on_the_host_tool_threads,
    many_concurrent_host_tool_calls_all_get_their_replies,
    a_panicking_closure_is_an_error_and_the_host_keeps_serving,
    a_closure_calls_back_into_the_pool_without_deadlock,
    a_nested_call_with_no_free_worker_waits_only_until_its_queue_timeout,
    python_lists_the_host_tools,
    without_host_tools_a_host_tool_call_fails_clearly_and_tools_are_registered,
    host_tools_take_and_return_bytes_both_ways_within_the_message_limit,
    a_host_tool_does_not_keep_its_pool_alive,
    a_host_tool_holding_the_last_handle_shuts_the_pool_down_on_its_thread,
    a_host_tool_may_shut_its_pool_down,
    shutdown_waits_for_a_running_host_tool_only_for_the_grace_period,
    builder_rejects_bad_host_options,
);
