//! A named pool's workers carry its name: `compute/worker-0` in stats,
//! replies, events, the worker's `{worker_id}` and in `recycle_worker`, so
//! that the logs of two pools can be told apart.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{environ, wait_until, Scope};
use serde_json::json;
use snakepit::events::{HandleEvent, WorkerStarted};
use snakepit::{CallOptions, Error, PoolSet};

const LIMIT: Duration = Duration::from_secs(60);

/// Records the worker of every `WorkerStarted` event.
#[derive(Debug, Default, Clone)]
struct Started(Arc<Mutex<Vec<String>>>);

impl HandleEvent for Started {
    fn worker_started(&self, event: &WorkerStarted) {
        self.0.lock().unwrap().push(event.worker.clone());
    }
}

fn a_named_pools_worker_ids_carry_its_name_everywhere() {
    let scope = Scope::new("names");
    let started = Started::default();
    let pool = scope
        .builder()
        .name("compute")
        .workers(2)
        .env("ID", "{worker_id}")
        .env("INDEX", "{worker_index}")
        .event_handler(started.clone())
        .build()
        .unwrap();

    let stats = pool.stats();
    let ids: Vec<&str> = stats.per_worker.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["compute/worker-0", "compute/worker-1"]);
    for (index, worker) in stats.per_worker.iter().enumerate() {
        let pid = worker.pid.unwrap();
        assert_eq!(environ(pid, "ID").as_deref(), Some(worker.id.as_str()));
        assert_eq!(environ(pid, "INDEX"), Some(index.to_string()));
        assert_eq!(
            environ(pid, "SNAKEPIT_WORKER_ID").as_deref(),
            Some(worker.id.as_str())
        );
    }
    let mut seen = started.0.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["compute/worker-0", "compute/worker-1"]);

    let reply = pool
        .execute_blocking_with("add", json!({"a": 1, "b": 2}), CallOptions::new())
        .unwrap();
    assert!(ids.contains(&reply.worker.as_str()), "{}", reply.worker);

    // The qualified id and the bare one both name a worker.
    for (slot, name) in [(0, "compute/worker-0"), (1, "worker-1")] {
        let before = pool.stats().per_worker[slot].pid;
        pool.recycle_worker(name).unwrap();
        assert!(
            wait_until(LIMIT, || {
                let now = pool.stats().per_worker[slot].pid;
                now.is_some() && now != before
            }),
            "{name} was not recycled"
        );
    }
    assert_eq!(pool.stats().recycles.manual, 2);
    match pool.recycle_worker("io/worker-0") {
        Err(Error::InvalidArgument { message, .. }) => assert!(
            message.contains("workers are compute/worker-0 to compute/worker-1"),
            "{message}"
        ),
        other => panic!("expected an unknown worker, got {other:?}"),
    }
    scope.finish(&pool);
}

fn a_pool_set_names_each_pool_after_its_entry_unless_it_has_a_name() {
    let scope = Scope::new("setnames");
    let set = PoolSet::start([
        ("io", scope.builder().workers(1)),
        ("gpu", scope.builder().name("cuda").workers(1)),
    ]);
    assert!(set.failures().is_empty(), "{:?}", set.failures());
    let id = |pool: &str| set.pool(pool).unwrap().stats().per_worker[0].id.clone();
    assert_eq!(id("io"), "io/worker-0");
    assert_eq!(id("gpu"), "cuda/worker-0", "the builder's own name wins");
    set.shutdown();
    scope.assert_no_processes();
}

both_transports!(
    a_named_pools_worker_ids_carry_its_name_everywhere,
    a_pool_set_names_each_pool_after_its_entry_unless_it_has_a_name,
);
