//! Data fidelity: every value kind arrives intact, what JSON cannot carry
//! fails clearly, bytes travel raw, and payload limits hold.

mod common;

use common::Scope;
use serde_json::json;
use snakepit::{CallOptions, Error};

fn every_json_kind_survives_python_both_ways() {
    let scope = Scope::new("kinds");
    let pool = scope.builder().workers(1).build().unwrap();
    let made = pool.execute_blocking("types", json!({})).unwrap();
    // Made in Python: integers at the edges of i64 stay integers.
    let obj = made.as_object().unwrap();
    for (key, value) in obj {
        let back = pool
            .execute_blocking("echo", json!({ "value": value }))
            .unwrap();
        assert_eq!(&back, value, "{key} changed on the way");
    }
    let ints: Vec<&serde_json::Value> = obj.values().filter(|v| v.is_i64() || v.is_u64()).collect();
    assert!(ints.iter().any(|v| v.as_i64() == Some(i64::MAX)), "{made}");
    assert!(ints.iter().any(|v| v.as_i64() == Some(i64::MIN)), "{made}");

    let floats = json!([
        0.1,
        1.0e-7,
        123456.789,
        -0.0,
        5e-324,
        1.7976931348623157e308
    ]);
    assert_eq!(
        pool.execute_blocking("echo", json!({ "value": floats }))
            .unwrap(),
        floats
    );
    // 1.0 stays a float, 1 stays an integer.
    let back = pool
        .execute_blocking("echo", json!({"value": [1, 1.0]}))
        .unwrap();
    assert!(back[0].is_i64() && back[1].is_f64(), "{back}");

    scope.finish(&pool);
}

fn what_json_cannot_carry_fails_clearly_or_becomes_a_marker() {
    let scope = Scope::new("nan");
    let pool = scope.builder().workers(1).build().unwrap();
    let err = pool.execute_blocking("nan", json!({})).unwrap_err();
    assert!(err.is_python("ValueError"), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("nan"), "{err}");

    let marker = pool.execute_blocking("unserializable", json!({})).unwrap();
    assert_eq!(marker["__ffi_unserializable__"], json!(true), "{marker}");
    assert!(
        marker["__type__"].as_str().unwrap().contains("Opaque"),
        "{marker}"
    );
    // The worker is fine afterwards.
    common::assert_serves(&pool);
    scope.finish(&pool);
}

fn exception_chains_are_kept_in_the_traceback() {
    let scope = Scope::new("chain");
    let pool = scope.builder().workers(1).build().unwrap();
    match pool
        .execute_blocking(
            "raise_error",
            json!({"kind": "chained", "message": "outer"}),
        )
        .unwrap_err()
    {
        Error::Python {
            class,
            message,
            traceback,
        } => {
            assert_eq!((class.as_str(), message.as_str()), ("ValueError", "outer"));
            assert!(traceback.contains("KeyError"), "{traceback}");
            assert!(traceback.contains("inner cause"), "{traceback}");
            assert!(traceback.contains("direct cause"), "{traceback}");
        }
        other => panic!("expected a Python error, got {other:?}"),
    }
    scope.finish(&pool);
}

fn a_64_mib_binary_round_trip_succeeds() {
    let scope = Scope::new("big");
    let pool = scope.builder().workers(1).build().unwrap();
    let payload: Vec<u8> = (0..64u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let reply = pool
        .execute_blocking_with(
            "binary_echo",
            json!({}),
            CallOptions::new().binary("data", payload.clone()),
        )
        .unwrap();
    assert_eq!(reply.binary.as_ref().map(Vec::len), Some(payload.len()));
    assert!(reply.binary.unwrap() == payload, "bytes changed on the way");
    scope.finish(&pool);
}

/// Results larger, smaller and the same size as the call's binary
/// arguments, one after another on one worker, come back exact, whether
/// the call may run again (idempotent: its arguments are kept) or not
/// (the socket transport may receive the result into the arguments'
/// memory, and the worker reuses the buffers of earlier calls).
fn binary_results_of_any_size_after_binary_arguments_come_back_exact() {
    let scope = Scope::new("resize");
    let pool = scope.builder().workers(1).build().unwrap();
    let pattern = |n: usize, seed: usize| -> Vec<u8> {
        (0..n).map(|i| ((i * 13 + seed) % 256) as u8).collect()
    };
    let cases = [
        (1 << 20, 3 << 20),
        (3 << 20, 1 << 20),
        (1 << 20, 10),
        (200 << 10, 200 << 10),
        (200 << 10, 150 << 10),
        (10, 2 << 20),
    ];
    for idempotent in [false, true] {
        for (seed, &(given, wanted)) in cases.iter().enumerate() {
            let data = pattern(given, seed);
            let expected: Vec<u8> = data.iter().copied().cycle().take(wanted).collect();
            let reply = pool
                .execute_blocking_with(
                    "binary_resize",
                    json!({"n": wanted}),
                    CallOptions::new()
                        .binary("data", data)
                        .idempotent(idempotent),
                )
                .unwrap();
            assert!(
                reply.binary.as_deref() == Some(&expected[..]),
                "{given} bytes in, {wanted} out (idempotent: {idempotent}): bytes changed"
            );
            // The echo's result is the worker's receive buffer itself.
            let data = pattern(wanted, seed + 1);
            let reply = pool
                .execute_blocking_with(
                    "binary_echo",
                    json!({}),
                    CallOptions::new()
                        .binary("data", data.clone())
                        .idempotent(idempotent),
                )
                .unwrap();
            assert!(reply.binary == Some(data), "echo of {wanted} bytes changed");
        }
    }
    scope.finish(&pool);
}

fn oversized_payloads_fail_at_once_and_the_pool_goes_on() {
    let scope = Scope::new("oversize");
    let limit = 1 << 20;
    let pool = scope
        .builder()
        .workers(1)
        .max_message_bytes(limit)
        .build()
        .unwrap();

    // Arguments over the limit: refused before anything is sent.
    let err = pool
        .execute_blocking_with(
            "binary_len",
            json!({}),
            CallOptions::new().binary("data", vec![0u8; 2 << 20]),
        )
        .unwrap_err();
    match err {
        Error::PayloadTooLarge {
            what,
            size,
            limit: l,
        } => {
            assert_eq!((what, l), ("arguments", limit as u64));
            assert!(size.unwrap() > limit as u64);
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    // A result over the limit: the worker refuses to send it.
    let err = pool
        .execute_blocking("make_bytes", json!({"n": 2 << 20}))
        .unwrap_err();
    assert!(
        matches!(err, Error::PayloadTooLarge { what: "result", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_message_bytes"), "{err}");
    // Under the limit all is well, on the same worker.
    let reply = pool
        .execute_blocking_with(
            "binary_len",
            json!({}),
            CallOptions::new().binary("data", vec![0u8; 1000]),
        )
        .unwrap();
    assert_eq!(reply.value, json!(1000));
    assert_eq!(pool.stats().crashes, 0);
    scope.finish(&pool);
}

fn adapters_are_per_call_unless_kept_per_worker() {
    let scope = Scope::new("perworker");
    let pool = scope.builder().workers(1).build().unwrap();
    for _ in 0..3 {
        assert_eq!(
            pool.execute_blocking("instance_calls", json!({})).unwrap(),
            json!(1)
        );
    }
    pool.shutdown();

    let pool = scope
        .builder()
        .workers(1)
        .adapter_per_worker(true)
        .build()
        .unwrap();
    for n in 1..=3 {
        assert_eq!(
            pool.execute_blocking("instance_calls", json!({})).unwrap(),
            json!(n)
        );
    }
    // Sessions still see their own context on the shared instance.
    let session = pool.session("s");
    assert_eq!(
        session
            .execute_blocking("session_counter", json!({}))
            .unwrap(),
        json!(1)
    );
    assert_eq!(
        session
            .execute_blocking("session_counter", json!({}))
            .unwrap(),
        json!(2)
    );
    assert_eq!(
        session.execute_blocking("whoami", json!({})).unwrap()["session_id"],
        json!("s")
    );
    scope.finish(&pool);
}

fn a_snakepit_style_adapter_runs_unchanged() {
    let scope = Scope::new("snakestyle");
    let pool = scope
        .builder()
        .adapter("snakepit_showcase.snakepit_style.SnakepitStyleAdapter")
        .workers(1)
        .build()
        .unwrap();
    let first = pool
        .execute_blocking("predict", json!({"text": "abcd"}))
        .unwrap();
    assert_eq!(first["score"], json!(4.0 * 0.5 + 2.0));
    let second = pool
        .execute_blocking("predict", json!({"text": "ab", "boost": 2}))
        .unwrap();
    assert_eq!(second["score"], json!(2.0 * 0.5 * 2.0 + 2.0));
    // The module-level cache outlives the per-call instances.
    assert_eq!(first["model_loaded_at"], second["model_loaded_at"]);
    // initialize and cleanup ran around each call, even a failing one, and
    // the adapter's own execute_tool routed every call.
    let err = pool
        .execute_blocking("predict", json!({"text": 5}))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArguments { .. }), "{err:?}");
    let counts = pool.execute_blocking("lifecycle", json!({})).unwrap();
    assert_eq!(
        counts,
        json!({"initialize": 4, "cleanup": 3, "execute_tool": 4})
    );
    scope.finish(&pool);
}

both_transports!(
    every_json_kind_survives_python_both_ways,
    what_json_cannot_carry_fails_clearly_or_becomes_a_marker,
    exception_chains_are_kept_in_the_traceback,
    a_64_mib_binary_round_trip_succeeds,
    binary_results_of_any_size_after_binary_arguments_come_back_exact,
    oversized_payloads_fail_at_once_and_the_pool_goes_on,
    adapters_are_per_call_unless_kept_per_worker,
    a_snakepit_style_adapter_runs_unchanged,
);
