//! Host tools: Rust closures the Python side calls back
//! (`session_context.call_host_tool(name, **kwargs)`).
//!
//! A host tool is registered on the builder with
//! [`host_tool`](crate::PoolBuilder::host_tool) or
//! [`host_tool_with_pool`](crate::PoolBuilder::host_tool_with_pool); the
//! host's callback server (`crate::host_server`) runs it on a thread of its
//! own. This file holds the tool itself and how one call of it is run: its
//! error and its panic both become an error message for Python.

use std::any::Any;
use std::sync::Arc;

use serde_json::Value;

use crate::error::Error;

/// A host tool's closure, ready to run.
type ToolFn = dyn Fn(Value) -> Result<Value, String> + Send + Sync;

/// The closure of a tool that calls back into its pool, of type `P`.
type WithPoolFn<P> = dyn Fn(&P, Value) -> Result<Value, String> + Send + Sync;

/// A [`WithPoolFn`] waiting to be bound.
struct WithPool<P>(Arc<WithPoolFn<P>>);

#[derive(Clone)]
enum Body {
    Ready(Arc<ToolFn>),
    /// A tool that needs a handle on its pool, which does not exist yet
    /// when the tool is registered (a `WithPool<P>`, erased so that this
    /// module need not know the pool): see [`HostTool::bind`].
    Unbound(Arc<dyn Any + Send + Sync>),
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
    /// A tool that needs nothing but its arguments.
    pub fn plain(
        name: String,
        description: String,
        f: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> HostTool {
        HostTool {
            name,
            description,
            body: Body::Ready(Arc::new(f)),
        }
    }

    /// A tool that is also handed its pool (a `P`); it runs once
    /// [`bind`](HostTool::bind) has told it how to reach the pool.
    pub fn with_pool<P: 'static>(
        name: String,
        description: String,
        f: impl Fn(&P, Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> HostTool {
        HostTool {
            name,
            description,
            body: Body::Unbound(Arc::new(WithPool::<P>(Arc::new(f)))),
        }
    }

    /// Tells a tool made with [`with_pool`](HostTool::with_pool) how to
    /// reach its pool: `reach` gives it, or `None` once it is gone (the
    /// tool then fails). Other tools are left as they are.
    pub fn bind<P: 'static>(&mut self, reach: impl Fn() -> Option<P> + Send + Sync + 'static) {
        let Body::Unbound(erased) = &self.body else {
            return;
        };
        let Some(WithPool(f)) = erased.downcast_ref::<WithPool<P>>() else {
            return;
        };
        let f = f.clone();
        let name = self.name.clone();
        self.body = Body::Ready(Arc::new(move |args| match reach() {
            Some(pool) => f(&pool, args),
            None => Err(needs_pool(&name)),
        }));
    }

    /// Runs the tool once. A panic is caught and reported like an error,
    /// so neither the thread nor the host goes down with it.
    pub fn run(&self, args: Value) -> Result<Value, String> {
        let Body::Ready(f) = &self.body else {
            return Err(needs_pool(&self.name));
        };
        crate::panics::catch(|| f(args))
            .unwrap_or_else(|message| Err(format!("host tool `{}` panicked: {message}", self.name)))
    }
}

/// The error of a tool that takes its pool when there is none.
fn needs_pool(name: &str) -> String {
    format!(
        "host tool `{name}` needs the pool, which is shutting down: {}",
        Error::ShuttingDown
    )
}

impl std::fmt::Debug for HostTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTool")
            .field("name", &self.name)
            .field("description", &self.description)
            .finish_non_exhaustive()
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
        assert_eq!(double.run(json!({"n": 21})), Ok(json!(42)));
        assert_eq!(
            double.run(json!({"n": "x"})),
            Err("n must be an integer".into())
        );

        let broken = HostTool::plain("broken".into(), String::new(), |_| {
            let v: Vec<u8> = Vec::new();
            Ok(json!(v[3]))
        });
        let err = broken.run(json!({})).unwrap_err();
        assert!(
            err.starts_with("host tool `broken` panicked: index out of bounds"),
            "{err}"
        );

        let formatted =
            HostTool::plain("formatted".into(), String::new(), |_| panic!("code {}", 7));
        assert_eq!(
            formatted.run(json!({})).unwrap_err(),
            "host tool `formatted` panicked: code 7"
        );
    }

    #[test]
    fn a_pool_tool_without_its_pool_fails_instead_of_running() {
        let mut tool = HostTool::with_pool("nested".into(), String::new(), |pool: &u32, _| {
            Ok(json!(pool))
        });
        let err = tool.run(json!({})).unwrap_err();
        assert!(err.contains("shutting down"), "{err}");

        tool.bind(|| None::<u32>);
        let err = tool.run(json!({})).unwrap_err();
        assert!(err.contains("shutting down"), "{err}");

        tool.bind(|| Some(7u32));
        assert!(
            tool.run(json!({})).is_err(),
            "a tool is bound once, for good"
        );
    }

    #[test]
    fn a_pool_tool_reaches_the_pool_it_was_bound_to() {
        let mut tool = HostTool::with_pool("nested".into(), String::new(), |pool: &u32, args| {
            Ok(json!(pool + args["n"].as_u64().unwrap() as u32))
        });
        tool.bind(|| Some(40u32));
        assert_eq!(tool.run(json!({"n": 2})), Ok(json!(42)));
    }
}
