//! Values on the wire: JSON text inside `google.protobuf.Any`.
//!
//! Parameters go out as `Any { type_url: StringValue, value: <JSON text> }`,
//! results come back with `type_url = type.googleapis.com/snakepit.<kind>`
//! and JSON text as the value; the kind is ignored. Failed calls carry a
//! JSON error payload in `error_message`, which becomes a typed [`Error`].

use protobuf::well_known_types::any::Any;
use serde_json::Value;

use super::messages::{ExecuteToolRequest, ExecuteToolResponse};
use crate::error::Error;

/// The type URL the host puts on parameter values (Snakepit's choice).
const PARAMETER_TYPE_URL: &str = "type.googleapis.com/google.protobuf.StringValue";

/// Builds an `ExecuteToolRequest` from a tool name, a JSON object of
/// arguments and named binary arguments.
pub(crate) fn encode_request(
    tool: &str,
    args: &Value,
    binary: Vec<(String, Vec<u8>)>,
    session: Option<&str>,
) -> Result<ExecuteToolRequest, Error> {
    let mut req = ExecuteToolRequest::new();
    req.tool_name = tool.to_owned();
    if let Some(session) = session {
        req.session_id = session.to_owned();
    }
    match args {
        Value::Object(map) => {
            for (name, value) in map {
                req.parameters.insert(name.clone(), encode_value(value));
            }
        }
        Value::Null => {}
        other => {
            return Err(Error::InvalidArguments {
                tool: tool.to_owned(),
                argument: None,
                signature: None,
                message: format!(
                    "arguments must be a JSON object of keyword arguments, got {}",
                    kind_of(other)
                ),
            })
        }
    }
    for (name, bytes) in binary {
        if req.parameters.contains_key(&name) {
            return Err(Error::InvalidArguments {
                tool: tool.to_owned(),
                argument: Some(name),
                signature: None,
                message: "given both as a JSON argument and as a binary argument".into(),
            });
        }
        req.binary_parameters.insert(name, bytes);
    }
    Ok(req)
}

/// Wraps one JSON value as a parameter `Any`.
pub(crate) fn encode_value(value: &Value) -> Any {
    let mut any = Any::new();
    any.type_url = PARAMETER_TYPE_URL.to_owned();
    // Serialising a `Value` cannot fail: its map keys are strings.
    any.value = serde_json::to_vec(value).expect("serde_json::Value always serialises");
    any
}

/// Reads the JSON value out of a result `Any`. An absent or empty `Any`
/// is `null`.
pub(crate) fn decode_value(any: Option<&Any>) -> Result<Value, String> {
    match any {
        None => Ok(Value::Null),
        Some(any) if any.value.is_empty() => Ok(Value::Null),
        Some(any) => serde_json::from_slice(&any.value)
            .map_err(|e| format!("result of type `{}` is not JSON: {e}", any.type_url)),
    }
}

/// What a successful response carries.
pub(crate) struct Decoded {
    pub value: Value,
    pub binary: Option<Vec<u8>>,
    pub metadata: std::collections::HashMap<String, String>,
}

/// Turns a response into a value, or the typed error its payload names.
pub(crate) fn decode_response(
    tool: &str,
    worker: &str,
    mut resp: ExecuteToolResponse,
) -> Result<Decoded, Error> {
    if !resp.success {
        return Err(decode_error(tool, &resp.error_message));
    }
    let value = decode_value(resp.result.as_ref()).map_err(|message| Error::Transport {
        worker: worker.to_owned(),
        code: "INVALID_RESULT".into(),
        message,
    })?;
    let binary = if resp.binary_result.is_empty() {
        None
    } else {
        Some(std::mem::take(&mut resp.binary_result))
    };
    Ok(Decoded {
        value,
        binary,
        metadata: std::mem::take(&mut resp.metadata),
    })
}

/// Turns a worker's error payload (JSON object or plain text) into an
/// [`Error`].
pub(crate) fn decode_error(tool: &str, payload: &str) -> Error {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(payload) else {
        return Error::Python {
            class: "Exception".into(),
            message: payload.to_owned(),
            traceback: String::new(),
        };
    };
    let text = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let class = text("type");
    let message = text("message");
    let context = obj.get("context").and_then(Value::as_object);
    let ctx_text = |key: &str| {
        context
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match class.as_str() {
        "ToolNotFoundError" => Error::ToolNotFound {
            tool: ctx_text("tool").unwrap_or_else(|| tool.to_owned()),
            available: context
                .and_then(|c| c.get("available"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        },
        "InvalidArgumentsError" => Error::InvalidArguments {
            tool: ctx_text("tool").unwrap_or_else(|| tool.to_owned()),
            argument: ctx_text("argument"),
            signature: ctx_text("signature"),
            message,
        },
        _ => Error::Python {
            class: if class.is_empty() {
                "Exception".into()
            } else {
                class
            },
            message,
            traceback: text("traceback"),
        },
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_json_text_in_string_value_anys() {
        let req = encode_request("add", &json!({"a": 1, "b": [true, null]}), vec![], None).unwrap();
        let a = &req.parameters["a"];
        assert_eq!(a.type_url, PARAMETER_TYPE_URL);
        assert_eq!(a.value, b"1");
        assert_eq!(req.parameters["b"].value, b"[true,null]");
    }

    #[test]
    fn non_object_arguments_are_refused() {
        let err = encode_request("add", &json!([1, 2]), vec![], None).unwrap_err();
        assert!(matches!(err, Error::InvalidArguments { ref tool, .. } if tool == "add"));
    }

    #[test]
    fn error_payloads_become_typed_errors() {
        let payload = r#"{"type":"ToolNotFoundError","message":"no tool","context":{"tool":"nope","available":["add","ping"]}}"#;
        assert_eq!(
            decode_error("nope", payload),
            Error::ToolNotFound {
                tool: "nope".into(),
                available: vec!["add".into(), "ping".into()]
            }
        );
        let payload = r#"{"type":"ValueError","message":"bad","traceback":"Traceback..."}"#;
        assert!(decode_error("t", payload).is_python("ValueError"));
        let plain = decode_error("t", "something broke");
        assert!(matches!(plain, Error::Python { ref message, .. } if message == "something broke"));
    }
}
