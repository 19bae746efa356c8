//! Pools started from a configuration file: several named pools side by
//! side, a broken one beside working ones, per-worker environments, and the
//! tool listing.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{environ, Scope, SHOWCASE, THREADED_SHOWCASE};
use serde_json::json;
use snakepit::{Error, PoolSet, Profile};

/// Writes `pools` (TOML tables) to a configuration file whose `[defaults]`
/// tag every worker with the scope's tag.
fn config_file(scope: &Scope, pools: &str) -> PathBuf {
    let path = scope.path("snakepit.toml");
    let text = format!(
        "[defaults]\nstartup_timeout = \"60s\"\nenv = {{ SNAKEPIT_TEST_TAG = \"{}\" }}\n\n{pools}",
        scope.tag
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn two_pools_with_different_adapters_serve_side_by_side() {
    let scope = Scope::new("poolset");
    let path = config_file(
        &scope,
        &format!(
            r#"
            [pools.compute]
            adapter = "{SHOWCASE}"
            workers = 2
            profile = "process"
            env = {{ DEVICE = "gpu{{worker_index}}", NAME = "{{worker_id}}" }}

            [pools.io]
            adapter = "{THREADED_SHOWCASE}"
            workers = 1
            profile = "thread"
            threads = 4
            "#
        ),
    );
    let set = PoolSet::from_config_file(&path).unwrap();
    assert!(set.failures().is_empty(), "{:?}", set.failures());
    assert_eq!(set.names().collect::<Vec<_>>(), ["compute", "io"]);

    let compute = set.pool("compute").unwrap();
    let io = set.pool("io").unwrap();
    assert_eq!(compute.profile(), Profile::Process);
    assert_eq!(io.profile(), Profile::Thread { threads: 4 });
    assert_eq!(io.stats().capacity, 4);

    // Both serve at once, from several threads, each with its own adapter.
    let set = &set;
    std::thread::scope(|s| {
        for i in 0..4 {
            s.spawn(move || {
                let sum = set
                    .pool("compute")
                    .unwrap()
                    .execute_blocking("add", json!({"a": i, "b": 1}))
                    .unwrap();
                assert_eq!(sum, json!(i + 1));
                let thread = set
                    .pool("io")
                    .unwrap()
                    .execute_blocking("thread_id", json!(null))
                    .unwrap();
                assert!(thread.is_u64());
            });
        }
    });
    let err = compute
        .execute_blocking("thread_id", json!(null))
        .unwrap_err();
    assert!(
        matches!(err, Error::ToolNotFound { .. }),
        "thread_id is only in the threaded adapter: {err:?}"
    );

    // Each worker got its own values, and a thread-count default that fits
    // its profile.
    // Worker ids carry the pool's name.
    for (index, worker) in compute.stats().per_worker.iter().enumerate() {
        let pid = worker.pid.unwrap();
        assert_eq!(worker.id, format!("compute/worker-{index}"));
        assert_eq!(environ(pid, "DEVICE"), Some(format!("gpu{index}")));
        assert_eq!(environ(pid, "NAME"), Some(worker.id.clone()));
    }
    assert_eq!(io.stats().per_worker[0].id, "io/worker-0");
    if std::env::var_os("OMP_NUM_THREADS").is_none() {
        let compute_pid = compute.stats().per_worker[0].pid.unwrap();
        let io_pid = io.stats().per_worker[0].pid.unwrap();
        assert_eq!(
            environ(compute_pid, "OMP_NUM_THREADS").as_deref(),
            Some("1")
        );
        assert_eq!(environ(io_pid, "OMP_NUM_THREADS").as_deref(), Some("4"));
        assert_eq!(environ(io_pid, "MKL_NUM_THREADS").as_deref(), Some("4"));
    }

    set.shutdown();
    assert!(matches!(
        compute.execute_blocking("ping", json!(null)),
        Err(Error::ShuttingDown)
    ));
    scope.assert_no_processes();
}

#[test]
fn a_pool_that_fails_to_start_does_not_stop_the_others() {
    let scope = Scope::new("poolset-broken");
    let path = config_file(
        &scope,
        &format!(
            r#"
            [pools.good]
            adapter = "{SHOWCASE}"
            workers = 1

            [pools.broken]
            adapter = "snakepit_showcase.broken.BrokenAdapter"
            workers = 2
            restart_backoff = {{ min = "10ms", max = "100ms" }}
            "#
        ),
    );
    let set = PoolSet::from_config_file(&path).unwrap();

    let failures = set.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "broken");
    let err = set.pool("broken").unwrap_err();
    assert!(
        matches!(&err, Error::Startup { message, .. } if message.contains("broken on purpose")),
        "the failure says why: {err}"
    );

    let good = set.pool("good").unwrap();
    assert_eq!(
        good.execute_blocking("add", json!({"a": 2, "b": 3}))
            .unwrap(),
        json!(5)
    );
    let err = set.pool("nope").unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "name",
                ..
            }
        ),
        "an unknown name is a bad argument, not a configuration error: {err:?}"
    );
    let err = err.to_string();
    assert!(
        err.contains("no pool named \"nope\"; the pools are: good, broken"),
        "{err}"
    );

    set.shutdown();
    scope.assert_no_processes();
}

#[test]
fn an_invalid_file_is_refused_before_any_process_starts() {
    let scope = Scope::new("poolset-invalid");
    let path = config_file(
        &scope,
        &format!(
            r#"
            [pools.good]
            adapter = "{SHOWCASE}"
            workers = 1

            [pools.typo]
            adapter = "{SHOWCASE}"
            call_timout = "5s"
            "#
        ),
    );
    let err = PoolSet::from_config_file(&path).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    assert!(
        message.contains(
            "pools.typo.call_timout = \"5s\": unknown key (did you mean `call_timeout`?)"
        ),
        "{message}"
    );
    // Not even the valid pool was started.
    scope.assert_no_processes();
}

fn tools_lists_every_tool_with_its_parameters() {
    let scope = Scope::new("tools");
    let pool = scope.threaded_builder(2).workers(1).build().unwrap();

    let tools = pool.tools().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    assert!(names.contains(&"thread_id"));

    let add = tools.iter().find(|t| t.name == "add").unwrap();
    assert_eq!(add.description, "Adds two numbers");
    let params: Vec<(&str, &str, bool)> = add
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), p.type_name.as_str(), p.required))
        .collect();
    assert_eq!(params, [("a", "float", true), ("b", "float", true)]);
    assert_eq!(add.signature(), "add(a: float, b: float)");

    let raise = tools.iter().find(|t| t.name == "raise_error").unwrap();
    assert_eq!(raise.parameters[0].default, Some(json!("ValueError")));
    assert!(!raise.parameters[0].required);

    let stream = tools.iter().find(|t| t.name == "count_stream").unwrap();
    assert!(stream.supports_streaming);
    assert!(!add.supports_streaming);

    // Listing takes no slot: the pool's load is untouched.
    assert_eq!(pool.stats().load, 0);
    pool.shutdown();
    assert!(matches!(pool.tools(), Err(Error::ShuttingDown)));
    scope.assert_no_processes();
}

/// Set in the copy of this test binary that
/// `ctrl_c_shuts_every_pool_of_the_set_down_and_exits` starts: the process
/// a user interrupts.
const INTERRUPTED_CHILD: &str = "SNAKEPIT_TEST_CTRL_C_CONFIG";

#[test]
fn ctrl_c_shuts_every_pool_of_the_set_down_and_exits() {
    if let Some(config) = std::env::var_os(INTERRUPTED_CHILD) {
        // The program: two pools, the handler, then a call that outlasts
        // the test; only Ctrl-C ends it.
        let set = PoolSet::from_config_file(config).unwrap();
        assert!(set.failures().is_empty(), "{:?}", set.failures());
        set.shutdown_on_ctrl_c().unwrap();
        // One handler per process: a second is refused, not stacked.
        assert!(matches!(
            set.shutdown_on_ctrl_c(),
            Err(Error::SignalHandler { .. })
        ));
        println!("handler installed");
        let interrupted = set
            .pool("compute")
            .unwrap()
            .execute_blocking("sleep", json!({"ms": 600_000}));
        // Shutting the pools down ends the call with ShuttingDown before
        // the handler has finished and exits: this thread waits for that
        // exit, as a program's main thread would, rather than racing it.
        assert!(
            matches!(interrupted, Err(Error::ShuttingDown)),
            "{interrupted:?}"
        );
        loop {
            std::thread::park();
        }
    }

    let scope = Scope::new("poolset-ctrl-c");
    let path = config_file(
        &scope,
        &format!(
            r#"
            [pools.compute]
            adapter = "{SHOWCASE}"
            workers = 1
            shutdown_grace = "200ms"

            [pools.io]
            adapter = "{THREADED_SHOWCASE}"
            workers = 1
            profile = "thread"
            threads = 2
            "#
        ),
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ctrl_c_shuts_every_pool_of_the_set_down_and_exits",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INTERRUPTED_CHILD, &path)
        // Tagged too, so that the scope kills it if this test fails early.
        .env("SNAKEPIT_TEST_TAG", &scope.tag)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("handler installed") {
        let read = output.read_line(&mut seen).unwrap();
        assert!(
            read > 0,
            "the program ended before installing its handler: {seen}"
        );
    }
    let workers = scope
        .live_processes()
        .into_iter()
        .filter(|&pid| pid != child.id())
        .count();
    assert_eq!(workers, 2, "both pools' workers run");

    // SAFETY: plain syscall on the child this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    scope.assert_no_processes();
}

both_transports!(tools_lists_every_tool_with_its_parameters);
