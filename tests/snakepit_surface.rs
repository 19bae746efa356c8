//! An adapter written in Snakepit's style that uses every name of the
//! Python surface Snakepit adapters import
//! (`python/snakepit_showcase/snakepit_surface.py`) runs unchanged on both
//! worker profiles, and every worker registers its tools with the host.

mod common;

use common::Scope;
use serde_json::{json, Value};
use snakepit::{CallOptions, Error, Pool, Profile};

const ADAPTER: &str = "snakepit_showcase.snakepit_surface.SurfaceAdapter";

/// The adapter's tools, sorted.
const TOOLS: [&str; 7] = [
    "counted",
    "describe",
    "host_side",
    "register_async",
    "roundtrip",
    "scaled",
    "traced",
];

fn surface_pool(scope: &Scope, profile: Profile) -> Pool {
    scope
        .builder()
        .adapter(ADAPTER)
        .profile(profile)
        .workers(2)
        .host_tool("double", "Doubles x", |args| {
            let x = args["x"].as_i64().ok_or("x must be an integer")?;
            Ok(json!(x * 2))
        })
        .build()
        .unwrap()
}

fn call(pool: &Pool, tool: &str, args: Value) -> Value {
    pool.execute_blocking(tool, args)
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

fn runs_every_name(profile: Profile) {
    let scope = Scope::new("surface");
    let pool = surface_pool(&scope, profile);

    // base_adapter: session_id, get_tools() as ToolRegistration messages,
    // ToolMetadata from @tool's positional arguments, call_tool dispatch.
    let described = pool
        .execute_blocking_with("describe", json!({}), CallOptions::new().session("sess-1"))
        .unwrap()
        .value;
    assert_eq!(described["session_id"], json!("sess-1"));
    assert_eq!(described["tools"], json!(TOOLS));
    assert_eq!(described["all_registrations"], json!(true));
    assert_eq!(
        described["scaled_description"],
        json!("Multiplies by a factor")
    );
    assert_eq!(described["scaled_required_variables"], json!(["factor"]));
    assert_eq!(
        described["scaled_parameters"],
        json!([["x", "float", true], ["factor", "float", false]])
    );
    assert_eq!(described["thread_safe"], json!(true));
    assert_eq!(
        call(&pool, "ping_direct", json!({})),
        json!({"pong": true, "session_id": null})
    );
    assert_eq!(call(&pool, "scaled", json!({"x": 3})), json!(6.0));

    // serialization and zero_copy.
    let trip = call(&pool, "roundtrip", json!({"value": {"a": [1, 2.5, "x"]}}));
    assert_eq!(trip["decoded"], json!({"a": [1, 2.5, "x"]}));
    assert_eq!(trip["bytes_back"], json!([0, 1]));
    assert_eq!(trip["graceful"]["set"], json!([3]));
    assert_eq!(
        trip["graceful"]["odd"]["__ffi_unserializable__"],
        json!(true)
    );
    assert_eq!(trip["zero_copy"], json!(true));

    // telemetry and logging_config.
    let traced = call(&pool, "traced", json!({"n": 5}));
    assert_eq!(traced["enabled"], json!(true));
    assert_eq!(traced["emitted"], json!(7), "start, 5 items, stop");
    assert_eq!(traced["header"], json!("x-snakepit-correlation-id"));

    // session_context over the worker's stub, and RegisterTools from a tool.
    let host = call(&pool, "host_side", json!({"x": 21}));
    assert_eq!(host["host_tools"], json!(["double"]));
    assert_eq!(host["doubled"], json!(42));
    assert_eq!(host["metadata"], json!({"origin": "surface"}));
    assert_eq!(host["registered"], json!(TOOLS));
    assert_eq!(call(&pool, "register_async", json!({})), json!(TOOLS));

    // base_adapter_threaded.
    let counted = call(&pool, "counted", json!({"label": "a"}));
    assert_eq!(counted["seen"], json!("a"));
    assert_eq!(counted["cleared"], json!("gone"));
    assert_eq!(
        counted["active"],
        json!(2),
        "the method and the inner block"
    );
    assert!(counted["total"].as_u64().unwrap() >= 2, "{counted}");

    // An unknown tool through call_tool (Snakepit's AttributeError) is the
    // typed ToolNotFound error, and the pool keeps serving.
    match pool.execute_blocking("nope", json!({})).unwrap_err() {
        Error::ToolNotFound { tool, available } => {
            assert_eq!(tool, "nope");
            assert_eq!(available, TOOLS);
        }
        other => panic!("expected ToolNotFound, got {other:?}"),
    }
    assert_eq!(
        call(&pool, "scaled", json!({"x": 1.5, "factor": 3})),
        json!(4.5)
    );

    // Each worker registered its tools at start-up under its id; the tools
    // that called register_with_session registered under their own ids.
    let registered = pool.registered_tools();
    for worker in ["worker-0", "worker-1", "surface-adapter", "surface-async"] {
        let names: Vec<&str> = registered
            .iter()
            .filter(|t| t.worker == worker)
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, TOOLS, "{worker}: {registered:?}");
    }
    let host_side = registered
        .iter()
        .find(|t| t.worker == "worker-0" && t.name == "host_side")
        .unwrap();
    assert_eq!(
        host_side.description,
        "Uses the host: its tools, a host tool call, and RegisterTools"
    );

    scope.finish(&pool);
}

both_transports!(
    a_snakepit_style_adapter_runs_every_name_in_the_process_profile,
    a_snakepit_style_adapter_runs_every_name_in_the_thread_profile,
);

fn a_snakepit_style_adapter_runs_every_name_in_the_process_profile() {
    runs_every_name(Profile::Process);
}

fn a_snakepit_style_adapter_runs_every_name_in_the_thread_profile() {
    runs_every_name(Profile::Thread { threads: 2 });
}
