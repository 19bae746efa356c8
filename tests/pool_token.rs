//! The pool's token: a worker serves only the pool that started it, and the
//! host's callback server serves only the pool's own workers, even to a
//! caller of the same user that finds their sockets.

mod common;
#[path = "common/wire.rs"]
mod wire;

use std::sync::Arc;
use std::time::Duration;

use common::Scope;
use grpcio::{CallOption, ChannelBuilder, Client, EnvBuilder, MetadataBuilder, RpcStatusCode};
use serde_json::json;

use wire::messages::PingRequest;

const HEADER: &str = "x-snakepit-pool-token";
const TOKEN_VAR: &str = "SNAKEPIT_POOL_TOKEN";

/// The arguments of a live process.
fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// The value after `flag` in `args`.
fn flag(args: &[String], flag: &str) -> String {
    let at = args.iter().position(|a| a == flag).unwrap_or_else(|| {
        panic!("no {flag} in {args:?}");
    });
    args[at + 1].clone()
}

/// Pings `address` as an outsider would, presenting `token` if given.
fn ping(address: &str, token: Option<&str>) -> Result<(), RpcStatusCode> {
    let env = Arc::new(EnvBuilder::new().cq_count(1).build());
    let client = Client::new(ChannelBuilder::new(env).connect(address));
    let mut opt = CallOption::default().timeout(Duration::from_secs(10));
    if let Some(token) = token {
        let mut headers = MetadataBuilder::new();
        headers.add_str(HEADER, token).unwrap();
        opt = opt.headers(headers.build());
    }
    client
        .unary_call(&wire::PING, &PingRequest::new(), opt)
        .map(|_| ())
        .map_err(|e| match e {
            grpcio::Error::RpcFailure(status) => status.code(),
            other => panic!("ping {address}: {other}"),
        })
}

#[test]
fn only_callers_with_the_pools_token_are_served_on_either_side() {
    let scope = Scope::new("token");
    let pool = scope
        .builder()
        .workers(1)
        .host_tool("double", "Doubles n", |args| {
            Ok(json!(args["n"].as_i64().ok_or("n must be an integer")? * 2))
        })
        .build()
        .unwrap();
    let pid = pool.execute_blocking("pid", json!({})).unwrap();
    let pid = u32::try_from(pid.as_u64().unwrap()).unwrap();
    let args = cmdline(pid);
    let worker = format!("unix:{}", flag(&args, "--socket"));
    let host = flag(&args, "--elixir-address");
    let token = common::environ(pid, TOKEN_VAR).expect("the worker was given a token");

    for address in [&worker, &host] {
        assert_eq!(
            ping(address, None),
            Err(RpcStatusCode::UNAUTHENTICATED),
            "{address} served a caller without the token"
        );
        let mut wrong = token.clone().into_bytes();
        wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
        let wrong = String::from_utf8(wrong).unwrap();
        assert_eq!(
            ping(address, Some(&wrong)),
            Err(RpcStatusCode::UNAUTHENTICATED),
            "{address} served a caller with the wrong token"
        );
        assert_eq!(ping(address, Some(&token)), Ok(()), "{address}");
    }

    // The pool and its worker present it to each other: a tool that calls
    // a host tool works, and the refusals left both sides healthy.
    let doubled = pool
        .execute_blocking(
            "call_host",
            json!({"name": "double", "arguments": {"n": 21}}),
        )
        .unwrap();
    assert_eq!(doubled, json!(42));

    // The token does not leak to what tools start. Right after the spawn
    // returns, the child may still be inside exec (vfork lets the parent
    // run on before the new environment is in place): wait until it is.
    let child = pool.execute_blocking("spawn_child", json!({})).unwrap();
    let child = u32::try_from(child.as_u64().unwrap()).unwrap();
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            common::environ(child, "SNAKEPIT_TEST_TAG").as_deref() == Some(scope.tag.as_str())
        }),
        "the child's environment could not be read"
    );
    assert_eq!(common::environ(child, TOKEN_VAR), None);

    scope.finish(&pool);
}

#[test]
fn two_pools_do_not_share_a_token() {
    let scope = Scope::new("token2");
    let a = scope.builder().workers(1).build().unwrap();
    let b = scope.builder().workers(1).build().unwrap();
    let token = |pool: &snakepit::Pool| {
        let pid = pool.execute_blocking("pid", json!({})).unwrap();
        common::environ(pid.as_u64().unwrap() as u32, TOKEN_VAR).unwrap()
    };
    let (ta, tb) = (token(&a), token(&b));
    assert_ne!(ta, tb);
    // A's token does not open B's worker.
    let pid_b = b.execute_blocking("pid", json!({})).unwrap();
    let worker_b = format!(
        "unix:{}",
        flag(&cmdline(pid_b.as_u64().unwrap() as u32), "--socket")
    );
    assert_eq!(
        ping(&worker_b, Some(&ta)),
        Err(RpcStatusCode::UNAUTHENTICATED)
    );
    a.shutdown();
    scope.finish(&b);
}
