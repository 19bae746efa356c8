//! [`Pool::tools`]: what the adapter offers, as its workers describe it.
//!
//! The wire protocol has no "list tools" call: a worker lists every tool
//! in the answer to `InitializeSession`, and an empty session id opens no
//! session. So the pool asks one serving worker that, outside the call
//! path (no slot is taken, and a process-profile worker answers it even
//! while a tool runs).

use serde_json::Value;

use crate::error::Error;
use crate::pool::Pool;
use crate::protocol::messages;
use crate::protocol::value;
use crate::transport::ErrorContext;

/// One tool of the adapter, from [`Pool::tools`].
///
/// ```
/// use snakepit::{Error, Pool};
///
/// /// Prints a help text for every tool, like `snakepit tools`.
/// fn print_help(pool: &Pool) -> Result<(), Error> {
///     for tool in pool.tools()? {
///         let streams = if tool.supports_streaming { " (streams)" } else { "" };
///         println!("{}{streams}\n    {}", tool.signature(), tool.description);
///         for param in &tool.parameters {
///             println!("    {}: {}", param.name, param.description);
///         }
///     }
///     Ok(())
/// }
/// # let _ = print_help;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolSpec {
    /// The name to call it by.
    pub name: String,
    /// What it does (the `@tool` description, else its docstring summary).
    pub description: String,
    /// Its parameters, in signature order.
    pub parameters: Vec<ParamSpec>,
    /// Whether it streams its result in chunks.
    pub supports_streaming: bool,
}

/// One parameter of a [`ToolSpec`].
///
/// ```
/// use serde_json::{Map, Value};
/// use snakepit::ToolSpec;
///
/// /// The arguments a call must give that `args` lacks, to refuse a call
/// /// before it reaches Python.
/// fn missing<'a>(tool: &'a ToolSpec, args: &Map<String, Value>) -> Vec<&'a str> {
///     tool.parameters
///         .iter()
///         .filter(|p| p.required && !args.contains_key(&p.name))
///         .map(|p| p.name.as_str())
///         .collect()
/// }
/// # let _ = missing;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ParamSpec {
    /// The keyword argument's name.
    pub name: String,
    /// The Python type as the worker reports it, e.g. `"int"`, `"str"`,
    /// `"list[float]"`, `"Any"`.
    pub type_name: String,
    /// Whether a call must give it.
    pub required: bool,
    /// The default value, for an optional parameter whose default has a
    /// JSON form.
    pub default: Option<Value>,
    /// What it is (from the `Args:` section of the tool's docstring).
    pub description: String,
}

impl ToolSpec {
    /// The tool as a one-line signature, e.g. `add(a: float, b: float)` or
    /// `raise_error(kind: str = "ValueError")`.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .parameters
            .iter()
            .map(|p| {
                let mut text = p.name.clone();
                if !p.type_name.is_empty() {
                    text = format!("{text}: {}", p.type_name);
                }
                match (&p.default, p.required) {
                    (Some(default), false) => format!("{text} = {default}"),
                    (None, false) => format!("{text} = ..."),
                    _ => text,
                }
            })
            .collect();
        format!("{}({})", self.name, params.join(", "))
    }
}

impl Pool {
    /// The adapter's tools, sorted by name, as a serving worker describes
    /// them. Blocks for one round trip (at most the call timeout).
    ///
    /// ```no_run
    /// let pool = snakepit::Pool::builder()
    ///     .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
    ///     .workers(1)
    ///     .build()?;
    /// for tool in pool.tools()? {
    ///     println!("{}: {}", tool.signature(), tool.description);
    /// }
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn tools(&self) -> Result<Vec<ToolSpec>, Error> {
        let shared = self.shared();
        if shared.is_closing() {
            return Err(Error::ShuttingDown);
        }
        let connections = self.live_connections()?;
        let mut last_error = None;
        // A worker may be recycled or die under the request: try the next.
        let timeout = shared.config().call_timeout;
        for (worker, conn) in connections {
            match conn.describe(timeout) {
                Ok(resp) if resp.success => return Ok(decode_tools(resp.available_tools)),
                Ok(resp) => return Err(value::decode_error("", &resp.error_message)),
                Err(e) => {
                    last_error = Some(e.into_error(&ErrorContext {
                        tool: "",
                        worker: &worker,
                        timeout,
                        max_message_bytes: shared.config().max_message_bytes,
                    }));
                }
            }
        }
        Err(last_error
            .or_else(|| shared.start_failure())
            .unwrap_or(Error::NoWorkerServing))
    }
}

fn decode_tools(available: std::collections::HashMap<String, messages::ToolSpec>) -> Vec<ToolSpec> {
    let mut tools: Vec<ToolSpec> = available
        .into_iter()
        .map(|(key, spec)| ToolSpec {
            name: if spec.name.is_empty() { key } else { spec.name },
            description: spec.description,
            supports_streaming: spec.supports_streaming,
            parameters: spec
                .parameters
                .into_iter()
                .map(|p| ParamSpec {
                    default: p
                        .default_value
                        .as_ref()
                        .and_then(|any| value::decode_value(Some(any)).ok())
                        .filter(|_| !p.required),
                    name: p.name,
                    type_name: p.type_,
                    required: p.required,
                    description: p.description,
                })
                .collect(),
        })
        .collect();
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    tools
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signatures_show_types_and_defaults() {
        let tool = ToolSpec {
            name: "raise_error".into(),
            description: String::new(),
            supports_streaming: false,
            parameters: vec![
                ParamSpec {
                    name: "kind".into(),
                    type_name: "str".into(),
                    required: false,
                    default: Some(json!("ValueError")),
                    description: String::new(),
                },
                ParamSpec {
                    name: "n".into(),
                    type_name: "int".into(),
                    required: true,
                    default: None,
                    description: String::new(),
                },
            ],
        };
        assert_eq!(
            tool.signature(),
            r#"raise_error(kind: str = "ValueError", n: int)"#
        );
    }
}
