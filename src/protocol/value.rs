//! Values on the wire: JSON text inside `google.protobuf.Any`.
//!
//! Parameters go out as `Any { type_url: StringValue, value: <JSON text> }`,
//! results come back with `type_url = type.googleapis.com/snakepit.<kind>`
//! and JSON text as the value; the kind is ignored. Failed calls carry a
//! JSON error payload in `error_message`, which becomes a typed [`Error`].

use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::struct_::value::Kind;
use protobuf::well_known_types::struct_::Value as StructValue;
use protobuf::well_known_types::wrappers::StringValue;
use protobuf::Message;
use serde_json::Value;

use super::messages::{ExecuteToolRequest, ExecuteToolResponse};
use crate::error::Error;

/// The type URL the host puts on parameter values (Snakepit's choice).
const PARAMETER_TYPE_URL: &str = "type.googleapis.com/google.protobuf.StringValue";

/// How many arrays/objects deep one value (an argument, a result, a streamed
/// item) may nest; the worker enforces the same (`MAX_NESTING` in
/// serialization.py). Below serde_json's parser limit (128) and Python's
/// recursion limit, so everything within it round-trips; past it the side
/// that sends refuses with an error naming the limit.
pub(crate) const MAX_NESTING: usize = 100;

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
                if nests_deeper_than(value, MAX_NESTING) {
                    return Err(Error::InvalidArguments {
                        tool: tool.to_owned(),
                        argument: Some(name.clone()),
                        signature: None,
                        message: format!(
                            "nests arrays/objects more than {MAX_NESTING} levels deep; \
                             values are limited to {MAX_NESTING} levels"
                        ),
                    });
                }
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

/// Whether `value` has more than `limit` arrays/objects on one path; a
/// scalar is 0 deep, `[1]` is 1. Walked without recursion, so any value a
/// caller built can be checked.
fn nests_deeper_than(value: &Value, limit: usize) -> bool {
    // Most arguments are scalars: no walk (and no allocation) for them.
    if !matches!(value, Value::Array(_) | Value::Object(_)) {
        return false;
    }
    // Each value with the number of arrays/objects around it.
    let mut pending = vec![(value, 0usize)];
    while let Some((value, around)) = pending.pop() {
        match value {
            Value::Array(_) | Value::Object(_) if around >= limit => return true,
            Value::Array(items) => pending.extend(items.iter().map(|v| (v, around + 1))),
            Value::Object(map) => pending.extend(map.values().map(|v| (v, around + 1))),
            _ => {}
        }
    }
    false
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

/// Reads one parameter of a callback from a worker (`ExecuteElixirTool`).
///
/// Our worker sends JSON text, whatever the `type_url`. Snakepit's own
/// worker also sends a string as a packed `google.protobuf.StringValue` and
/// may send a packed `google.protobuf.Value`; both are recognised by their
/// `type_url`. A packed StringValue is tried first: read as JSON, its
/// leading length byte may be whitespace and the rest valid JSON (a nine
/// character string of digits would become a number), while JSON text
/// never starts with the tag byte of a packed message.
pub(crate) fn decode_parameter(any: &Any) -> Result<Value, String> {
    let url = any.type_url.as_str();
    if url.ends_with("google.protobuf.StringValue") {
        if any.value.is_empty() {
            // The packed form of "" is no bytes at all.
            return Ok(Value::String(String::new()));
        }
        if let Some(text) = packed_string(&any.value) {
            return Ok(Value::String(text));
        }
    }
    match serde_json::from_slice(&any.value) {
        Ok(value) => Ok(value),
        Err(_) if any.value.is_empty() => Ok(Value::Null),
        Err(json_error) => {
            if url.ends_with("google.protobuf.Value") {
                if let Ok(packed) = StructValue::parse_from_bytes(&any.value) {
                    return Ok(from_struct_value(packed));
                }
            }
            let url = if url.is_empty() { "(no type_url)" } else { url };
            Err(format!(
                "a value of type {url} is neither JSON nor a packed protobuf value: {json_error}"
            ))
        }
    }
}

/// A packed `StringValue` with nothing but its one field, or `None`.
fn packed_string(bytes: &[u8]) -> Option<String> {
    if bytes.first() != Some(&0x0a) {
        return None;
    }
    let packed = StringValue::parse_from_bytes(bytes).ok()?;
    packed
        .special_fields
        .unknown_fields()
        .iter()
        .next()
        .is_none()
        .then_some(packed.value)
}

fn from_struct_value(value: StructValue) -> Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
        }
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::StructValue(s)) => Value::Object(
            s.fields
                .into_iter()
                .map(|(k, v)| (k, from_struct_value(v)))
                .collect(),
        ),
        Some(Kind::ListValue(l)) => {
            Value::Array(l.values.into_iter().map(from_struct_value).collect())
        }
        Some(_) => Value::Null,
    }
}

/// Wraps a host tool's result as the workers expect a result:
/// `type.googleapis.com/snakepit.<kind>` and JSON text.
pub(crate) fn encode_result(value: &Value) -> Any {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    };
    let mut any = Any::new();
    any.type_url = format!("type.googleapis.com/snakepit.{kind}");
    any.value = serde_json::to_vec(value).expect("serde_json::Value always serialises");
    any
}

/// What a successful response carries.
pub(crate) struct Decoded {
    pub value: Value,
    pub binary: Option<Vec<u8>>,
    pub metadata: std::collections::HashMap<String, String>,
}

/// Turns a response into a value, or the typed error its payload names.
/// The `type_url` of the `result` that stands beside a bytes result (its
/// value is JSON `null`).
pub(crate) const BINARY_RESULT_TYPE_URL: &str = "type.googleapis.com/snakepit.binary";

/// A response's result, its bytes and its metadata, decoded.
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
    // Empty bytes are no field on the wire: the result's kind tells them
    // from a tool that returned no bytes.
    let is_binary = !resp.binary_result.is_empty()
        || resp
            .result
            .as_ref()
            .is_some_and(|any| any.type_url == BINARY_RESULT_TYPE_URL);
    let binary = is_binary.then(|| std::mem::take(&mut resp.binary_result));
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

    /// `depth` arrays around `"core"`.
    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!("core"), |inner, _| json!([inner]))
    }

    #[test]
    fn arguments_nest_up_to_the_limit_and_no_deeper() {
        let at_limit = json!({"v": nested(MAX_NESTING), "flat": 1});
        let req = encode_request("echo", &at_limit, vec![], None).unwrap();
        let sent: Value = serde_json::from_slice(&req.parameters["v"].value).unwrap();
        assert_eq!(
            sent,
            nested(MAX_NESTING),
            "read back within serde_json's limit"
        );

        let deeper = json!({"v": {"k": nested(MAX_NESTING)}});
        match encode_request("echo", &deeper, vec![], None).unwrap_err() {
            Error::InvalidArguments {
                argument, message, ..
            } => {
                assert_eq!(argument.as_deref(), Some("v"));
                assert!(message.contains("100 levels"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!nests_deeper_than(&json!([[], {}, 1]), 2));
        assert!(nests_deeper_than(&json!([1, []]), 1));
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

    #[test]
    fn callback_parameters_in_every_form_snakepit_sends() {
        let any = |url: &str, value: Vec<u8>| {
            let mut any = Any::new();
            any.type_url = url.to_owned();
            any.value = value;
            any
        };
        let string_url = "type.googleapis.com/google.protobuf.StringValue";
        let value_url = "type.googleapis.com/google.protobuf.Value";

        // JSON text, as our worker sends it.
        assert_eq!(
            decode_parameter(&encode_value(&json!({"a": [1, 2.5]}))).unwrap(),
            json!({"a": [1, 2.5]})
        );
        assert_eq!(
            decode_parameter(&encode_value(&json!("text"))).unwrap(),
            json!("text")
        );

        // Packed StringValues, including one whose length byte is a tab and
        // whose text is JSON.
        for text in ["hello", "123456789", "", "héllo ✓"] {
            let mut packed = StringValue::new();
            packed.value = text.to_owned();
            let bytes = packed.write_to_bytes().unwrap();
            assert_eq!(
                decode_parameter(&any(string_url, bytes)).unwrap(),
                json!(text),
                "{text:?}"
            );
        }

        // Numbers as JSON under google.protobuf.Value, and a packed Value.
        assert_eq!(
            decode_parameter(&any(value_url, b"42".to_vec())).unwrap(),
            json!(42)
        );
        assert_eq!(
            decode_parameter(&any(value_url, b"0.5".to_vec())).unwrap(),
            json!(0.5)
        );
        let mut packed = StructValue::new();
        packed.kind = Some(Kind::ListValue(
            protobuf::well_known_types::struct_::ListValue {
                values: vec![
                    StructValue {
                        kind: Some(Kind::NumberValue(1.5)),
                        ..Default::default()
                    },
                    StructValue {
                        kind: Some(Kind::StringValue("x".into())),
                        ..Default::default()
                    },
                    StructValue {
                        kind: Some(Kind::BoolValue(true)),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        ));
        let bytes = packed.write_to_bytes().unwrap();
        assert_eq!(
            decode_parameter(&any(value_url, bytes)).unwrap(),
            json!([1.5, "x", true])
        );

        assert_eq!(decode_parameter(&any("", vec![])).unwrap(), Value::Null);
        assert!(decode_parameter(&any("x", b"\xff not json".to_vec())).is_err());
    }

    #[test]
    fn host_tool_results_name_their_kind() {
        for (value, kind) in [
            (json!(null), "null"),
            (json!(true), "boolean"),
            (json!(3), "integer"),
            (json!(3.5), "float"),
            (json!("s"), "string"),
            (json!([1]), "list"),
            (json!({"k": 1}), "map"),
        ] {
            let any = encode_result(&value);
            assert_eq!(any.type_url, format!("type.googleapis.com/snakepit.{kind}"));
            assert_eq!(serde_json::from_slice::<Value>(&any.value).unwrap(), value);
        }
    }
}
