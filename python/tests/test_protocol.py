"""The message classes built in protocol.py match proto/snakepit_bridge.proto
exactly: same messages, fields, numbers, types, labels, maps, oneofs, rpcs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor as descriptor_module
from google.protobuf import descriptor_pb2

from snakepit_bridge import protocol

PROTO_FILE = Path(__file__).resolve().parents[2] / "proto" / "snakepit_bridge.proto"

_FIELD = re.compile(r"^(repeated\s+)?(map\s*<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;$")
_RPC = re.compile(r"^rpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*returns\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*;$")

# A field as both sides describe it: (number, label, type, map key, map value, oneof)
Field = tuple[int, str, str, str | None, str | None, str | None]


def read_proto(text: str) -> tuple[dict[str, Any], dict[str, dict[str, Field]], dict[str, tuple[str, str, bool, bool]]]:
    """A small reader for the subset of proto3 the schema uses."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    header: dict[str, Any] = {"imports": []}
    messages: dict[str, dict[str, Field]] = {}
    rpcs: dict[str, tuple[str, str, bool, bool]] = {}
    # One statement per line: split on braces and semicolons, keeping them.
    statements = [s.strip() for s in re.split(r"(?<=[{};])", text) if s.strip()]
    stack: list[tuple[str, str]] = []
    for statement in statements:
        if statement == "}":
            stack.pop()
            continue
        if statement.endswith("{"):
            kind, name = statement[:-1].split()
            stack.append((kind, name))
            if kind == "message":
                assert len(stack) == 1, "nested messages are not expected"
                messages[name] = {}
            continue
        scope = stack[-1][0] if stack else "file"
        if scope == "file":
            if statement.startswith("syntax"):
                header["syntax"] = re.search(r'"(\w+)"', statement).group(1)  # type: ignore[union-attr]
            elif statement.startswith("package"):
                header["package"] = statement.split()[1].rstrip(";")
            elif statement.startswith("import"):
                header["imports"].append(re.search(r'"([^"]+)"', statement).group(1))  # type: ignore[union-attr]
            continue
        if scope == "service":
            match = _RPC.match(statement)
            assert match, f"unreadable rpc: {statement}"
            name, client_stream, request, server_stream, response = match.groups()
            rpcs[name] = (request, response, bool(client_stream), bool(server_stream))
            continue
        match = _FIELD.match(statement)
        assert match, f"unreadable field: {statement}"
        repeated, type_name, key, value, name, number = match.groups()
        message = next(n for k, n in stack if k == "message")
        oneof = stack[-1][1] if scope == "oneof" else None
        if key is not None:
            messages[message][name] = (int(number), "map", "map", key, value, oneof)
        else:
            label = "repeated" if repeated else "optional"
            messages[message][name] = (int(number), label, type_name, None, None, oneof)
    return header, messages, rpcs


_SCALAR_NAMES = {
    getattr(descriptor_module.FieldDescriptor, f"TYPE_{name.upper()}"): name
    for name in ("double", "float", "int64", "uint64", "int32", "uint32", "bool", "string", "bytes", "sint32", "sint64")
}


def _short(full_name: str) -> str:
    prefix = protocol.PACKAGE + "."
    return full_name[len(prefix) :] if full_name.startswith(prefix) else full_name


def _type_of(field: Any) -> str:
    if field.message_type is not None:
        return _short(field.message_type.full_name)
    return _SCALAR_NAMES[field.type]


def _is_repeated(field: Any) -> bool:
    # protobuf 7 replaced FieldDescriptor.label with is_repeated.
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return field.label == descriptor_module.FieldDescriptor.LABEL_REPEATED


def describe(message: Any) -> dict[str, Field]:
    """A message descriptor in the reader's terms."""
    fields: dict[str, Field] = {}
    for field in message.fields:
        oneof = field.containing_oneof.name if field.containing_oneof is not None else None
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            fields[field.name] = (field.number, "map", "map", _type_of(key), _type_of(value), oneof)
        else:
            is_repeated = _is_repeated(field)
            label = "repeated" if is_repeated else "optional"
            fields[field.name] = (field.number, label, _type_of(field), None, None, oneof)
    return fields


def _streaming(method: Any) -> tuple[bool, bool]:
    """(client, server) streaming flags; old upb releases only have them on the proto form."""
    if hasattr(method, "client_streaming"):
        return method.client_streaming, method.server_streaming
    proto = descriptor_pb2.MethodDescriptorProto()
    method.CopyToProto(proto)
    return proto.client_streaming, proto.server_streaming


@pytest.fixture(scope="module")
def proto() -> tuple[dict[str, Any], dict[str, dict[str, Field]], dict[str, tuple[str, str, bool, bool]]]:
    return read_proto(PROTO_FILE.read_text(encoding="utf-8"))


def test_reader_sees_the_whole_file(proto: Any) -> None:
    header, messages, rpcs = proto
    assert header["syntax"] == "proto3"
    assert len(messages) >= 29 and len(rpcs) == 11
    assert messages["TelemetryValue"]["float_value"] == (2, "optional", "double", None, None, "value")
    assert messages["ExecuteToolRequest"]["binary_parameters"] == (6, "map", "map", "string", "bytes", None)


def test_file_header_matches(proto: Any) -> None:
    header, _, _ = proto
    file = protocol.FILE_DESCRIPTOR
    assert file.name == protocol.FILE_NAME == "snakepit_bridge.proto"
    assert file.package == header["package"] == "snakepit.bridge"
    assert sorted(d.name for d in file.dependencies) == sorted(header["imports"])


def test_every_message_matches_the_proto(proto: Any) -> None:
    _, messages, _ = proto
    built = protocol.FILE_DESCRIPTOR.message_types_by_name
    assert list(built) == list(messages), "message set or order differs"
    for name, fields in messages.items():
        assert describe(built[name]) == fields, f"message {name} differs from the .proto"


def test_map_fields_use_map_entry_messages() -> None:
    request = protocol.FILE_DESCRIPTOR.message_types_by_name["ExecuteToolRequest"]
    entry = request.fields_by_name["binary_parameters"].message_type
    assert entry.name == "BinaryParametersEntry"
    assert entry.GetOptions().map_entry
    assert entry.containing_type is request
    tools = protocol.FILE_DESCRIPTOR.message_types_by_name["InitializeSessionResponse"]
    assert tools.fields_by_name["available_tools"].message_type.name == "AvailableToolsEntry"


def test_service_matches_the_proto(proto: Any) -> None:
    _, _, rpcs = proto
    service = protocol.FILE_DESCRIPTOR.services_by_name["BridgeService"]
    assert service.full_name == protocol.SERVICE_NAME
    built = {
        m.name: (_short(m.input_type.full_name), _short(m.output_type.full_name), *_streaming(m))
        for m in service.methods
    }
    assert built == rpcs
    for name, (request, response, client_streaming, server_streaming) in rpcs.items():
        method = protocol.METHODS[name]
        assert method.path == f"/snakepit.bridge.BridgeService/{name}" == protocol.method_path(name)
        assert method.request.DESCRIPTOR.name == request.split(".")[-1]
        assert method.response.DESCRIPTOR.name == response.split(".")[-1]
        assert (method.client_streaming, method.server_streaming) == (client_streaming, server_streaming)


def test_every_message_is_a_module_attribute(proto: Any) -> None:
    _, messages, _ = proto
    for name in messages:
        cls = getattr(protocol, name)
        assert cls.DESCRIPTOR.full_name == f"snakepit.bridge.{name}"


def test_messages_round_trip_on_the_wire() -> None:
    request = protocol.ExecuteToolRequest(session_id="s", tool_name="add", stream=True)
    request.parameters["a"].type_url = "type.googleapis.com/google.protobuf.StringValue"
    request.parameters["a"].value = b"1"
    request.binary_parameters["blob"] = b"\x00\xff"
    request.metadata["k"] = "v"
    decoded = protocol.ExecuteToolRequest.FromString(request.SerializeToString())
    # Field by field: the pure-Python runtime compares Any by unpacking it.
    assert (decoded.session_id, decoded.tool_name, decoded.stream) == ("s", "add", True)
    assert (decoded.parameters["a"].type_url, decoded.parameters["a"].value) == (
        "type.googleapis.com/google.protobuf.StringValue",
        b"1",
    )
    assert dict(decoded.metadata) == {"k": "v"}
    assert decoded.binary_parameters["blob"] == b"\x00\xff"
    value = protocol.TelemetryValue(int_value=-(2**63))
    assert protocol.TelemetryValue.FromString(value.SerializeToString()).WhichOneof("value") == "int_value"
    control = protocol.TelemetryControl(sampling=protocol.TelemetrySamplingUpdate(sampling_rate=0.5))
    assert protocol.TelemetryControl.FromString(control.SerializeToString()).WhichOneof("control") == "sampling"


def test_private_pool_fallback_builds_the_same_messages() -> None:
    serialized = protocol.build_file_descriptor_proto().SerializeToString()
    pool = protocol._load_into_private_pool(serialized)
    ours = pool.FindMessageTypeByName("snakepit.bridge.ExecuteToolResponse")
    assert describe(ours) == describe(protocol.ExecuteToolResponse.DESCRIPTOR)


def test_the_comparison_notices_drift() -> None:
    text = PROTO_FILE.read_text(encoding="utf-8")
    for original, drifted in (
        ("bool stream = 5;", "bool stream = 7;"),
        ("map<string, bytes> binary_parameters = 6;", "map<string, string> binary_parameters = 6;"),
        ("repeated string deny = 2;", "string deny = 2;"),
    ):
        assert original in text
        _, messages, _ = read_proto(text.replace(original, drifted))
        built = protocol.FILE_DESCRIPTOR.message_types_by_name
        assert any(describe(built[name]) != fields for name, fields in messages.items()), drifted
