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
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::Error;

/// The arguments of one call of a binary host tool (see
/// [`PoolBuilder::host_tool_binary`](crate::PoolBuilder::host_tool_binary)).
///
/// Python's keyword arguments are split by type: `bytes`, `bytearray` and
/// `memoryview` values arrive in [`binary`](HostArgs::binary), untouched;
/// everything else in [`json`](HostArgs::json), as with a JSON host tool.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HostArgs {
    /// The JSON arguments, as one object (empty when there are none).
    pub json: Value,
    /// The binary arguments, by keyword.
    pub binary: BTreeMap<String, Vec<u8>>,
}

/// No arguments: an empty JSON object and no bytes.
impl Default for HostArgs {
    fn default() -> Self {
        HostArgs {
            json: Value::Object(serde_json::Map::new()),
            binary: BTreeMap::new(),
        }
    }
}

impl HostArgs {
    /// The binary argument `name`, or an error message naming it, for
    /// `?` inside a host tool.
    ///
    /// ```
    /// use snakepit::{HostArgs, HostOutput};
    ///
    /// fn reverse(args: HostArgs) -> Result<HostOutput, String> {
    ///     let mut data = args.bytes("data")?.to_vec();
    ///     data.reverse();
    ///     Ok(HostOutput::Bytes(data))
    /// }
    /// # let _ = reverse;
    /// ```
    pub fn bytes(&self, name: &str) -> Result<&[u8], String> {
        self.binary
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| format!("missing binary argument `{name}` (pass it as bytes)"))
    }
}

/// What a binary host tool returns: JSON, as a JSON host tool does, or raw
/// bytes, which Python receives as `bytes`.
#[derive(Debug, Clone, PartialEq)]
pub enum HostOutput {
    /// A JSON value, decoded in Python as the JSON tools' results are.
    Json(Value),
    /// Raw bytes, sent without any encoding.
    Bytes(Vec<u8>),
}

impl From<Value> for HostOutput {
    fn from(value: Value) -> Self {
        HostOutput::Json(value)
    }
}

impl From<Vec<u8>> for HostOutput {
    fn from(bytes: Vec<u8>) -> Self {
        HostOutput::Bytes(bytes)
    }
}

/// A host tool's closure, ready to run.
type ToolFn = dyn Fn(HostArgs) -> Result<HostOutput, String> + Send + Sync;

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
    /// Whether it takes binary arguments; a JSON tool refuses them.
    takes_binary: bool,
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
            takes_binary: false,
            body: Body::Ready(Arc::new(move |args: HostArgs| {
                f(args.json).map(HostOutput::Json)
            })),
        }
    }

    /// A tool that takes binary arguments and may return bytes.
    pub fn binary(
        name: String,
        description: String,
        f: impl Fn(HostArgs) -> Result<HostOutput, String> + Send + Sync + 'static,
    ) -> HostTool {
        HostTool {
            name,
            description,
            takes_binary: true,
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
            takes_binary: false,
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
        self.body = Body::Ready(Arc::new(move |args: HostArgs| match reach() {
            Some(pool) => f(&pool, args.json).map(HostOutput::Json),
            None => Err(needs_pool(&name)),
        }));
    }

    /// Runs the tool once. A panic is caught and reported like an error,
    /// so neither the thread nor the host goes down with it.
    pub fn run(&self, args: HostArgs) -> Result<HostOutput, String> {
        let Body::Ready(f) = &self.body else {
            return Err(needs_pool(&self.name));
        };
        if let (false, Some(name)) = (self.takes_binary, args.binary.keys().next()) {
            return Err(format!(
                "host tool `{}` takes JSON arguments only, and `{name}` is bytes (the host \
                 registers tools that take bytes with `host_tool_binary`)",
                self.name
            ));
        }
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

    /// JSON-only arguments.
    fn json_args(json: Value) -> HostArgs {
        HostArgs {
            json,
            binary: BTreeMap::new(),
        }
    }

    /// A JSON result.
    fn j(value: Value) -> Result<HostOutput, String> {
        Ok(HostOutput::Json(value))
    }

    #[test]
    fn results_errors_and_panics_become_replies() {
        let double = HostTool::plain("double".into(), String::new(), |args| {
            let n = args["n"].as_i64().ok_or("n must be an integer")?;
            Ok(json!(n * 2))
        });
        assert_eq!(double.run(json_args(json!({"n": 21}))), j(json!(42)));
        assert_eq!(
            double.run(json_args(json!({"n": "x"}))),
            Err("n must be an integer".into())
        );

        let broken = HostTool::plain("broken".into(), String::new(), |_| {
            let v: Vec<u8> = Vec::new();
            Ok(json!(v[3]))
        });
        let err = broken.run(HostArgs::default()).unwrap_err();
        assert!(
            err.starts_with("host tool `broken` panicked: index out of bounds"),
            "{err}"
        );

        let formatted =
            HostTool::plain("formatted".into(), String::new(), |_| panic!("code {}", 7));
        assert_eq!(
            formatted.run(HostArgs::default()).unwrap_err(),
            "host tool `formatted` panicked: code 7"
        );
    }

    #[test]
    fn a_pool_tool_without_its_pool_fails_instead_of_running() {
        let mut tool = HostTool::with_pool("nested".into(), String::new(), |pool: &u32, _| {
            Ok(json!(pool))
        });
        let err = tool.run(HostArgs::default()).unwrap_err();
        assert!(err.contains("shutting down"), "{err}");

        tool.bind(|| None::<u32>);
        let err = tool.run(HostArgs::default()).unwrap_err();
        assert!(err.contains("shutting down"), "{err}");

        tool.bind(|| Some(7u32));
        assert!(
            tool.run(HostArgs::default()).is_err(),
            "a tool is bound once, for good"
        );
    }

    #[test]
    fn a_pool_tool_reaches_the_pool_it_was_bound_to() {
        let mut tool = HostTool::with_pool("nested".into(), String::new(), |pool: &u32, args| {
            Ok(json!(pool + args["n"].as_u64().unwrap() as u32))
        });
        tool.bind(|| Some(40u32));
        assert_eq!(tool.run(json_args(json!({"n": 2}))), j(json!(42)));
    }

    #[test]
    fn binary_arguments_reach_binary_tools_only() {
        let reverse = HostTool::binary("reverse".into(), String::new(), |args| {
            let mut data = args.bytes("data")?.to_vec();
            data.reverse();
            Ok(HostOutput::Bytes(data))
        });
        let mut args = json_args(json!({}));
        args.binary.insert("data".into(), vec![1, 2, 3]);
        assert_eq!(
            reverse.run(args.clone()),
            Ok(HostOutput::Bytes(vec![3, 2, 1]))
        );
        assert_eq!(
            reverse.run(HostArgs::default()),
            Err("missing binary argument `data` (pass it as bytes)".into())
        );

        let json_only = HostTool::plain("json_only".into(), String::new(), Ok);
        let err = json_only.run(args).unwrap_err();
        assert!(
            err.starts_with("host tool `json_only` takes JSON arguments only, and `data` is bytes"),
            "{err}"
        );
    }
}
