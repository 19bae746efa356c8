//! Sessions: calls that share state on one worker.
//!
//! Two users each keep a counter in their session's store on the worker
//! side; every call of a session lands on the same worker. Then the three
//! affinity modes meet a busy worker.
//!
//! Run with `cargo run --release --example sessions`.

use std::time::Duration;

use serde_json::json;
use snakepit::{Affinity, CallOptions, Error, Pool};

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();
    let pool = Pool::builder()
        .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
        .workers(3)
        .session_idle_timeout(Duration::from_secs(600))
        .build()?;
    // Ctrl-C shuts the pool down cleanly: no worker outlives the program.
    pool.shutdown_on_ctrl_c()?;

    let alice = pool.session("alice");
    let bob = pool.session("bob");
    for round in 1..=3 {
        for user in [&alice, &bob] {
            let reply =
                user.execute_blocking_with("session_counter", json!({}), CallOptions::new())?;
            println!(
                "round {round}: {:<5} counter = {} on {}",
                user.id(),
                reply.value,
                reply.worker
            );
        }
    }

    println!("\nwhile alice's worker is busy:");
    let busy = {
        let alice = alice.clone();
        std::thread::spawn(move || alice.execute_blocking("sleep", json!({"ms": 500})))
    };
    std::thread::sleep(Duration::from_millis(100));
    for affinity in [
        Affinity::Hint,
        Affinity::StrictFailFast,
        Affinity::StrictQueue,
    ] {
        let outcome =
            alice.execute_blocking_with("whoami", json!({}), CallOptions::new().affinity(affinity));
        match outcome {
            Ok(reply) => println!("  {affinity:?}: ran on {}", reply.worker),
            Err(e) => println!("  {affinity:?}: {e}"),
        }
    }
    busy.join().expect("caller panicked")?;

    alice.close()?;
    println!(
        "\nalice closed; a new alice session starts at {}",
        pool.session("alice")
            .execute_blocking("session_counter", json!({}))?
    );
    pool.shutdown();
    Ok(())
}
