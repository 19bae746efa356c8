//! One module per scenario; each runs its rounds, prints its table of
//! medians and adds its figures (and targets) to the report.

pub mod adapter;
pub mod faults;
pub mod memory;
pub mod overhead;
pub mod payload;
pub mod python;
pub mod remote;
pub mod scaling;
pub mod startup;
pub mod thread;
pub mod transport;

use serde_json::json;
use snakepit::{Pool, Profile, Transport};

/// What a scenario returns when it cannot run.
pub type Outcome = Result<(), Box<dyn std::error::Error>>;

/// A pool of the showcase adapter, every other option at its default.
pub fn pool(workers: usize, profile: Profile) -> Result<Pool, snakepit::Error> {
    pool_on(Transport::Grpc, workers, profile)
}

/// The transports compared, as (label, transport), gRPC first.
pub const TRANSPORTS: [(&str, Transport); 2] =
    [("grpc", Transport::Grpc), ("socket", Transport::Socket)];

/// [`pool`] on `transport`.
pub fn pool_on(
    transport: Transport,
    workers: usize,
    profile: Profile,
) -> Result<Pool, snakepit::Error> {
    // Only the process profile runs one call at a time; every other profile
    // needs a thread-safe adapter.
    let adapter = match profile {
        Profile::Process => "snakepit_showcase.adapter.ShowcaseAdapter",
        _ => "snakepit_showcase.adapter.ThreadedShowcaseAdapter",
    };
    Pool::builder()
        .adapter(adapter)
        .workers(workers)
        .profile(profile)
        .transport(transport)
        .build()
}

/// `ping` on the pool; panics on failure (a benchmark must not count
/// failed calls).
pub fn ping(pool: &Pool) {
    pool.execute_blocking("ping", json!({})).expect("ping");
}

/// `cpu_burn(ms=1)` on the pool: 1 ms of CPU in the Python worker.
pub fn burn_1ms(pool: &Pool) {
    pool.execute_blocking("cpu_burn", json!({"ms": 1}))
        .expect("cpu_burn");
}
