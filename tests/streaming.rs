//! Streaming calls: chunks in order and complete, delivered while the
//! generator runs, cancelled by dropping the stream, failing mid-way.

mod common;

use std::time::Duration;

use common::{wait_until, Scope};
use serde_json::json;
use snakepit::{CallOptions, Chunk, Error};

const LIMIT: Duration = Duration::from_secs(60);

fn a_hundred_chunks_arrive_in_order_and_complete() {
    let scope = Scope::new("stream100");
    let pool = scope.builder().workers(1).build().unwrap();
    let chunks: Vec<Chunk> = pool
        .execute_stream("count_stream", json!({"n": 100}))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<Chunk> = (0..100).map(|i| Chunk::Json(json!({ "i": i }))).collect();
    assert_eq!(chunks, expected);

    let bytes: Vec<Chunk> = pool
        .execute_stream("bytes_stream", json!({"n": 3, "size": 2}))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        bytes,
        [
            Chunk::Bytes(vec![0, 0]),
            Chunk::Bytes(vec![1, 1]),
            Chunk::Bytes(vec![2, 2])
        ]
    );
    assert_eq!(pool.stats().load, 0);
    scope.finish(&pool);
}

fn the_first_chunk_arrives_before_the_generator_finishes() {
    let scope = Scope::new("gated");
    let pool = scope.builder().workers(1).build().unwrap();
    let release = scope.path("release");
    let mut stream = pool
        .execute_stream(
            "stream_gated",
            json!({"release_path": release.to_str().unwrap()}),
        )
        .unwrap();
    // The generator cannot finish until this file exists, and the test
    // creates it only after reading the first chunk.
    assert_eq!(stream.next().unwrap().unwrap(), Chunk::Json(json!("first")));
    std::fs::write(&release, b"").unwrap();
    assert_eq!(
        stream.next().unwrap().unwrap(),
        Chunk::Json(json!("second"))
    );
    assert!(stream.next().is_none());
    scope.finish(&pool);
}

fn dropping_a_stream_closes_the_generator_and_frees_the_worker() {
    let scope = Scope::new("cancel");
    let pool = scope.builder().workers(1).build().unwrap();
    let closed = scope.path("closed");
    let mut stream = pool
        .execute_stream(
            "stream_until_cancelled",
            json!({"closed_path": closed.to_str().unwrap(), "interval_ms": 5}),
        )
        .unwrap();
    for i in 0..3 {
        assert_eq!(
            stream.next().unwrap().unwrap(),
            Chunk::Json(json!({ "i": i }))
        );
    }
    assert_eq!(pool.stats().load, 1);
    drop(stream);

    assert!(
        wait_until(LIMIT, || closed.exists()),
        "the generator's finally did not run"
    );
    assert!(
        wait_until(LIMIT, || pool.stats().load == 0),
        "the slot was not released"
    );
    // The worker serves the next call.
    common::assert_serves(&pool);
    assert_eq!(pool.stats().crashes, 0);
    scope.finish(&pool);
}

fn an_exception_mid_stream_ends_it_with_the_python_error() {
    let scope = Scope::new("streamerr");
    let pool = scope.builder().workers(1).build().unwrap();
    let items: Vec<Result<Chunk, Error>> = pool
        .execute_stream("stream_then_fail", json!({"n": 2, "message": "ran dry"}))
        .unwrap()
        .collect();
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[1].as_ref().unwrap(), &Chunk::Json(json!({"i": 1})));
    match &items[2] {
        Err(Error::Python { class, message, .. }) => {
            assert_eq!(class, "RuntimeError");
            assert_eq!(message, "ran dry");
        }
        other => panic!("expected the Python error, got {other:?}"),
    }
    common::assert_serves(&pool);
    scope.finish(&pool);
}

fn streams_respect_the_call_timeout_and_work_in_sessions() {
    let scope = Scope::new("streamto");
    let pool = scope.threaded_builder(2).workers(1).build().unwrap();
    let slow = pool
        .execute_stream_with(
            "count_stream",
            json!({"n": 1000, "delay_ms": 50}),
            CallOptions::new().timeout(Duration::from_millis(300)),
        )
        .unwrap();
    let last = slow.last().unwrap();
    assert!(matches!(last, Err(Error::Timeout { .. })), "{last:?}");

    let session = pool.session("streamer");
    session
        .execute_blocking("session_counter", json!({}))
        .unwrap();
    let mut stream = session
        .execute_stream("count_stream", json!({"n": 2}))
        .unwrap();
    assert_eq!(
        stream.next().unwrap().unwrap(),
        Chunk::Json(json!({"i": 0}))
    );
    drop(stream);
    assert_eq!(
        session
            .execute_blocking("session_counter", json!({}))
            .unwrap(),
        json!(2)
    );
    assert!(wait_until(LIMIT, || pool.stats().load == 0));
    scope.finish(&pool);
}

both_transports!(
    a_hundred_chunks_arrive_in_order_and_complete,
    the_first_chunk_arrives_before_the_generator_finishes,
    dropping_a_stream_closes_the_generator_and_frees_the_worker,
    an_exception_mid_stream_ends_it_with_the_python_error,
    streams_respect_the_call_timeout_and_work_in_sessions,
);
