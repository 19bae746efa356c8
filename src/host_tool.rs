//! Host tools: Rust closures the Python side calls back
//! (`session_context.call_host_tool(name, **kwargs)`).
//!
//! A host tool is registered on the builder with
//! [`host_tool`](crate::PoolBuilder::host_tool) or
//! [`host_tool_with_pool`](crate::PoolBuilder::host_tool_with_pool); the
//! host's callback server (`crate::host_server`) runs it on a thread of its
//! own. This file holds the tool itself and how one call of it is run: its
//! error and its panic both become an error message for Python.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use serde_json::Value;

use crate::error::Error;
use crate::pool::Pool;

/// The closure of a host tool that needs no pool.
type PlainFn = dyn Fn(Value) -> Result<Value, String> + Send + Sync;

/// The closure of a host tool that calls back into its pool.
type WithPoolFn = dyn Fn(&Pool, Value) -> Result<Value, String> + Send + Sync;

#[derive(Clone)]
enum Body {
    Plain(Arc<PlainFn>),
    WithPool(Arc<WithPoolFn>),
}

/// One host tool: its name, its description (what Python lists) and its
/// closure.
#[derive(Clone)]
pub(crate) struct HostTool {
    pub name: String,
    pub description: String,
    body: Body,
}

impl HostTool {
    pub fn plain(
        name: String,
        description: String,
        f: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> HostTool {
        HostTool {
            name,
            description,
            body: Body::Plain(Arc::new(f)),
        }
    }

    pub fn with_pool(
        name: String,
        description: String,
        f: impl Fn(&Pool, Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> HostTool {
        HostTool {
            name,
            description,
            body: Body::WithPool(Arc::new(f)),
        }
    }

    /// Runs the tool once. A panic is caught and reported like an error,
    /// so neither the thread nor the host goes down with it. `pool` is
    /// `None` once the pool is gone; a tool that needs it then fails.
    pub fn run(&self, pool: Option<&Pool>, args: Value) -> Result<Value, String> {
        let outcome = match &self.body {
            Body::Plain(f) => panic::catch_unwind(AssertUnwindSafe(|| f(args))),
            Body::WithPool(f) => {
                let Some(pool) = pool else {
                    return Err(format!(
                        "host tool `{}` needs the pool, which is shutting down: {}",
                        self.name,
                        Error::ShuttingDown
                    ));
                };
                panic::catch_unwind(AssertUnwindSafe(|| f(pool, args)))
            }
        };
        outcome.unwrap_or_else(|payload| {
            Err(format!(
                "host tool `{}` panicked: {}",
                self.name,
                panic_message(payload.as_ref())
            ))
        })
    }
}

impl std::fmt::Debug for HostTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTool")
            .field("name", &self.name)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a
/// `String`; anything else has no text).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic with no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_errors_and_panics_become_replies() {
        let double = HostTool::plain("double".into(), String::new(), |args| {
            let n = args["n"].as_i64().ok_or("n must be an integer")?;
            Ok(json!(n * 2))
        });
        assert_eq!(double.run(None, json!({"n": 21})), Ok(json!(42)));
        assert_eq!(
            double.run(None, json!({"n": "x"})),
            Err("n must be an integer".into())
        );

        let broken = HostTool::plain("broken".into(), String::new(), |_| {
            let v: Vec<u8> = Vec::new();
            Ok(json!(v[3]))
        });
        let err = broken.run(None, json!({})).unwrap_err();
        assert!(
            err.starts_with("host tool `broken` panicked: index out of bounds"),
            "{err}"
        );

        let formatted =
            HostTool::plain("formatted".into(), String::new(), |_| panic!("code {}", 7));
        assert_eq!(
            formatted.run(None, json!({})).unwrap_err(),
            "host tool `formatted` panicked: code 7"
        );
    }

    #[test]
    fn a_pool_tool_without_its_pool_fails_instead_of_running() {
        let tool = HostTool::with_pool("nested".into(), String::new(), |_, _| Ok(json!(1)));
        let err = tool.run(None, json!({})).unwrap_err();
        assert!(err.contains("shutting down"), "{err}");
    }
}
