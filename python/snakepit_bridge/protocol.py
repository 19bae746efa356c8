"""The wire contract (``proto/snakepit_bridge.proto``) as Python message classes.

The classes are built at import time from the table below, without ``protoc``
and without generated ``_pb2`` files: the table becomes a
``FileDescriptorProto``, the descriptor pool turns it into descriptors, and
the message factory turns those into classes. A test parses the ``.proto``
file and checks that this table matches it field for field.

Every message is a module attribute (``protocol.PingRequest``, ...). gRPC
method paths come from :func:`method_path`.

Because the classes are made at run time, a type checker cannot see their
fields: each is typed :data:`MessageClass` and their instances
:data:`DynamicMessage`, both ``Any``. Code that handles these messages says
so with those names rather than with a bare ``Any``.
"""

from __future__ import annotations

from typing import Any as _AnyType
from typing import Union

# Imported first so that any.proto and timestamp.proto are in the default
# pool before a file that depends on them is added.
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

FILE_NAME = "snakepit_bridge.proto"
PACKAGE = "snakepit.bridge"
SERVICE_NAME = f"{PACKAGE}.BridgeService"

_DEPENDENCIES = (any_pb2, timestamp_pb2)

MessageClass = _AnyType
"""The type of a message class of this module (built at run time: ``Any``
to a type checker, whose view of ``google.protobuf.message.Message`` has
none of their fields)."""

DynamicMessage = _AnyType
"""The type of a message of this module (``Any``, see :data:`MessageClass`)."""

# One entry per message, in .proto order: (field name, number, type[, oneof]).
# A type is a scalar name, a message name (a bare name is in this package),
# "repeated <type>" or "map<key,value>".
_Field = Union[tuple[str, int, str], tuple[str, int, str, str]]
"""(name, number, type) or (name, number, type, oneof name)."""
_MESSAGES: dict[str, tuple[_Field, ...]] = {
    "PingRequest": (("message", 1, "string"),),
    "PingResponse": (
        ("message", 1, "string"),
        ("server_time", 2, "google.protobuf.Timestamp"),
        ("capacity", 3, "int32"),
        ("adapter", 4, "string"),
        ("version", 5, "string"),
    ),
    "InitializeSessionRequest": (
        ("session_id", 1, "string"),
        ("metadata", 2, "map<string,string>"),
        ("config", 3, "SessionConfig"),
    ),
    "SessionConfig": (
        ("enable_caching", 1, "bool"),
        ("cache_ttl_seconds", 2, "int32"),
        ("enable_telemetry", 3, "bool"),
    ),
    "InitializeSessionResponse": (
        ("success", 1, "bool"),
        ("error_message", 2, "string"),
        ("available_tools", 3, "map<string,ToolSpec>"),
    ),
    "CleanupSessionRequest": (
        ("session_id", 1, "string"),
        ("force", 2, "bool"),
    ),
    "CleanupSessionResponse": (
        ("success", 1, "bool"),
        ("resources_cleaned", 2, "int32"),
    ),
    "ToolSpec": (
        ("name", 1, "string"),
        ("description", 2, "string"),
        ("parameters", 3, "repeated ParameterSpec"),
        ("metadata", 4, "map<string,string>"),
        ("supports_streaming", 5, "bool"),
    ),
    "ParameterSpec": (
        ("name", 1, "string"),
        ("type", 2, "string"),
        ("description", 3, "string"),
        ("required", 4, "bool"),
        ("default_value", 5, "google.protobuf.Any"),
        ("validation_json", 6, "string"),
    ),
    "ExecuteToolRequest": (
        ("session_id", 1, "string"),
        ("tool_name", 2, "string"),
        ("parameters", 3, "map<string,google.protobuf.Any>"),
        ("metadata", 4, "map<string,string>"),
        ("stream", 5, "bool"),
        ("binary_parameters", 6, "map<string,bytes>"),
    ),
    "ExecuteToolResponse": (
        ("success", 1, "bool"),
        ("result", 2, "google.protobuf.Any"),
        ("error_message", 3, "string"),
        ("metadata", 4, "map<string,string>"),
        ("execution_time_ms", 5, "int64"),
        ("binary_result", 6, "bytes"),
    ),
    "ToolChunk": (
        ("chunk_id", 1, "string"),
        ("data", 2, "bytes"),
        ("is_final", 3, "bool"),
        ("metadata", 4, "map<string,string>"),
    ),
    "GetSessionRequest": (("session_id", 1, "string"),),
    "GetSessionResponse": (
        ("session_id", 1, "string"),
        ("metadata", 2, "map<string,string>"),
        ("created_at", 3, "google.protobuf.Timestamp"),
        ("tool_count", 4, "int32"),
    ),
    "HeartbeatRequest": (
        ("session_id", 1, "string"),
        ("client_time", 2, "google.protobuf.Timestamp"),
    ),
    "HeartbeatResponse": (
        ("server_time", 1, "google.protobuf.Timestamp"),
        ("session_valid", 2, "bool"),
    ),
    "RegisterToolsRequest": (
        ("session_id", 1, "string"),
        ("tools", 2, "repeated ToolRegistration"),
        ("worker_id", 3, "string"),
    ),
    "ToolRegistration": (
        ("name", 1, "string"),
        ("description", 2, "string"),
        ("parameters", 3, "repeated ParameterSpec"),
        ("metadata", 4, "map<string,string>"),
        ("supports_streaming", 5, "bool"),
    ),
    "RegisterToolsResponse": (
        ("success", 1, "bool"),
        ("tool_ids", 2, "map<string,string>"),
        ("error_message", 3, "string"),
    ),
    "GetExposedElixirToolsRequest": (("session_id", 1, "string"),),
    "GetExposedElixirToolsResponse": (("tools", 1, "repeated ToolSpec"),),
    "ExecuteElixirToolRequest": (
        ("session_id", 1, "string"),
        ("tool_name", 2, "string"),
        ("parameters", 3, "map<string,google.protobuf.Any>"),
        ("metadata", 4, "map<string,string>"),
        ("binary_parameters", 5, "map<string,bytes>"),
    ),
    "ExecuteElixirToolResponse": (
        ("success", 1, "bool"),
        ("result", 2, "google.protobuf.Any"),
        ("error_message", 3, "string"),
        ("metadata", 4, "map<string,string>"),
        ("execution_time_ms", 5, "int64"),
        ("binary_result", 6, "bytes"),
    ),
    "TelemetryEvent": (
        ("event_parts", 1, "repeated string"),
        ("measurements", 2, "map<string,TelemetryValue>"),
        ("metadata", 3, "map<string,string>"),
        ("timestamp_ns", 4, "int64"),
        ("correlation_id", 5, "string"),
    ),
    "TelemetryValue": (
        ("int_value", 1, "int64", "value"),
        ("float_value", 2, "double", "value"),
        ("string_value", 3, "string", "value"),
    ),
    "TelemetryControl": (
        ("toggle", 1, "TelemetryToggle", "control"),
        ("sampling", 2, "TelemetrySamplingUpdate", "control"),
        ("filter", 3, "TelemetryEventFilter", "control"),
    ),
    "TelemetryToggle": (("enabled", 1, "bool"),),
    "TelemetrySamplingUpdate": (
        ("sampling_rate", 1, "double"),
        ("event_patterns", 2, "repeated string"),
    ),
    "TelemetryEventFilter": (
        ("allow", 1, "repeated string"),
        ("deny", 2, "repeated string"),
    ),
}

# (rpc name, request, response, client streaming, server streaming)
_METHODS: tuple[tuple[str, str, str, bool, bool], ...] = (
    ("Ping", "PingRequest", "PingResponse", False, False),
    ("InitializeSession", "InitializeSessionRequest", "InitializeSessionResponse", False, False),
    ("CleanupSession", "CleanupSessionRequest", "CleanupSessionResponse", False, False),
    ("GetSession", "GetSessionRequest", "GetSessionResponse", False, False),
    ("Heartbeat", "HeartbeatRequest", "HeartbeatResponse", False, False),
    ("ExecuteTool", "ExecuteToolRequest", "ExecuteToolResponse", False, False),
    ("ExecuteStreamingTool", "ExecuteToolRequest", "ToolChunk", False, True),
    ("RegisterTools", "RegisterToolsRequest", "RegisterToolsResponse", False, False),
    ("GetExposedElixirTools", "GetExposedElixirToolsRequest", "GetExposedElixirToolsResponse", False, False),
    ("ExecuteElixirTool", "ExecuteElixirToolRequest", "ExecuteElixirToolResponse", False, False),
    ("StreamTelemetry", "TelemetryControl", "TelemetryEvent", True, True),
)

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS: dict[str, int] = {
    "double": _FDP.TYPE_DOUBLE,
    "float": _FDP.TYPE_FLOAT,
    "int64": _FDP.TYPE_INT64,
    "uint64": _FDP.TYPE_UINT64,
    "int32": _FDP.TYPE_INT32,
    "uint32": _FDP.TYPE_UINT32,
    "sint32": _FDP.TYPE_SINT32,
    "sint64": _FDP.TYPE_SINT64,
    "fixed32": _FDP.TYPE_FIXED32,
    "fixed64": _FDP.TYPE_FIXED64,
    "bool": _FDP.TYPE_BOOL,
    "string": _FDP.TYPE_STRING,
    "bytes": _FDP.TYPE_BYTES,
}


def _qualified(type_name: str) -> str:
    """The fully qualified (leading-dot) name of a message type."""
    return "." + (type_name if "." in type_name else f"{PACKAGE}.{type_name}")


def _set_type(field: descriptor_pb2.FieldDescriptorProto, type_name: str) -> None:
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]  # type: ignore[assignment]
    else:
        field.type = _FDP.TYPE_MESSAGE
        field.type_name = _qualified(type_name)


def _map_entry_name(field_name: str) -> str:
    """protoc's name for the nested entry message of a map field."""
    return "".join(part[:1].upper() + part[1:] for part in field_name.split("_")) + "Entry"


def build_file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """Builds the ``FileDescriptorProto`` of ``snakepit_bridge.proto`` from the table."""
    file = descriptor_pb2.FileDescriptorProto(
        name=FILE_NAME,
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/any.proto", "google/protobuf/timestamp.proto"],
    )
    for message_name, fields in _MESSAGES.items():
        message = file.message_type.add(name=message_name)
        oneofs: dict[str, int] = {}
        for entry in fields:
            name, number, type_spec = entry[0], entry[1], entry[2]
            oneof = entry[3] if len(entry) > 3 else None
            field = message.field.add(name=name, number=number, label=_FDP.LABEL_OPTIONAL)
            if type_spec.startswith("map<"):
                key_type, value_type = (t.strip() for t in type_spec[4:-1].split(","))
                entry_message = message.nested_type.add(name=_map_entry_name(name))
                entry_message.options.map_entry = True
                for entry_field_name, entry_number, entry_type in (
                    ("key", 1, key_type),
                    ("value", 2, value_type),
                ):
                    entry_field = entry_message.field.add(
                        name=entry_field_name, number=entry_number, label=_FDP.LABEL_OPTIONAL
                    )
                    _set_type(entry_field, entry_type)
                field.label = _FDP.LABEL_REPEATED
                field.type = _FDP.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{message_name}.{entry_message.name}"
            elif type_spec.startswith("repeated "):
                field.label = _FDP.LABEL_REPEATED
                _set_type(field, type_spec[len("repeated ") :])
            else:
                _set_type(field, type_spec)
            if oneof is not None:
                if oneof not in oneofs:
                    oneofs[oneof] = len(message.oneof_decl)
                    message.oneof_decl.add(name=oneof)
                field.oneof_index = oneofs[oneof]
    service = file.service.add(name=SERVICE_NAME.rsplit(".", 1)[1])
    for rpc, request, response, client_streaming, server_streaming in _METHODS:
        service.method.add(
            name=rpc,
            input_type=_qualified(request),
            output_type=_qualified(response),
            client_streaming=client_streaming,
            server_streaming=server_streaming,
        )
    return file


def _load_into_private_pool(serialized: bytes) -> descriptor_pool.DescriptorPool:
    """A pool of our own, used when another, different ``snakepit_bridge.proto``
    (say, Snakepit's generated module) already sits in the default pool."""
    pool = descriptor_pool.DescriptorPool()
    for module in _DEPENDENCIES:
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(serialized)
    return pool


def _load_pool() -> descriptor_pool.DescriptorPool:
    serialized = build_file_descriptor_proto().SerializeToString()
    pool = descriptor_pool.Default()
    try:
        pool.AddSerializedFile(serialized)
    except Exception:  # noqa: BLE001 - a conflicting file of the same name
        return _load_into_private_pool(serialized)
    return pool


POOL: descriptor_pool.DescriptorPool = _load_pool()
"""The descriptor pool that holds the snakepit descriptors."""

FILE_DESCRIPTOR = POOL.FindFileByName(FILE_NAME)
"""The ``FileDescriptor`` of ``snakepit_bridge.proto``."""


def message_class(full_name: str) -> MessageClass:
    """The message class for a fully qualified message name (without leading dot)."""
    descriptor = POOL.FindMessageTypeByName(full_name)
    get_message_class = getattr(message_factory, "GetMessageClass", None)
    if get_message_class is not None:
        return get_message_class(descriptor)
    # protobuf < 4.22 (GetPrototype is gone from newer versions and their stubs).
    factory: _AnyType = message_factory.MessageFactory(POOL)
    return factory.GetPrototype(descriptor)


def _own(name: str) -> MessageClass:
    return message_class(f"{PACKAGE}.{name}")


Any: MessageClass = message_class("google.protobuf.Any")
"""``google.protobuf.Any`` as used by the fields of these messages."""
Timestamp: MessageClass = message_class("google.protobuf.Timestamp")
"""``google.protobuf.Timestamp`` as used by the fields of these messages."""

PingRequest: MessageClass = _own("PingRequest")
PingResponse: MessageClass = _own("PingResponse")
InitializeSessionRequest: MessageClass = _own("InitializeSessionRequest")
SessionConfig: MessageClass = _own("SessionConfig")
InitializeSessionResponse: MessageClass = _own("InitializeSessionResponse")
CleanupSessionRequest: MessageClass = _own("CleanupSessionRequest")
CleanupSessionResponse: MessageClass = _own("CleanupSessionResponse")
ToolSpec: MessageClass = _own("ToolSpec")
ParameterSpec: MessageClass = _own("ParameterSpec")
ExecuteToolRequest: MessageClass = _own("ExecuteToolRequest")
ExecuteToolResponse: MessageClass = _own("ExecuteToolResponse")
ToolChunk: MessageClass = _own("ToolChunk")
GetSessionRequest: MessageClass = _own("GetSessionRequest")
GetSessionResponse: MessageClass = _own("GetSessionResponse")
HeartbeatRequest: MessageClass = _own("HeartbeatRequest")
HeartbeatResponse: MessageClass = _own("HeartbeatResponse")
RegisterToolsRequest: MessageClass = _own("RegisterToolsRequest")
ToolRegistration: MessageClass = _own("ToolRegistration")
RegisterToolsResponse: MessageClass = _own("RegisterToolsResponse")
GetExposedElixirToolsRequest: MessageClass = _own("GetExposedElixirToolsRequest")
GetExposedElixirToolsResponse: MessageClass = _own("GetExposedElixirToolsResponse")
ExecuteElixirToolRequest: MessageClass = _own("ExecuteElixirToolRequest")
ExecuteElixirToolResponse: MessageClass = _own("ExecuteElixirToolResponse")
TelemetryEvent: MessageClass = _own("TelemetryEvent")
TelemetryValue: MessageClass = _own("TelemetryValue")
TelemetryControl: MessageClass = _own("TelemetryControl")
TelemetryToggle: MessageClass = _own("TelemetryToggle")
TelemetrySamplingUpdate: MessageClass = _own("TelemetrySamplingUpdate")
TelemetryEventFilter: MessageClass = _own("TelemetryEventFilter")

MESSAGE_NAMES: tuple[str, ...] = tuple(_MESSAGES)
"""Every message of the file, in .proto order."""


class Method:
    """One rpc of ``BridgeService``: its path and its message classes."""

    __slots__ = ("name", "path", "request", "response", "client_streaming", "server_streaming")

    def __init__(
        self,
        name: str,
        request: MessageClass,
        response: MessageClass,
        client_streaming: bool,
        server_streaming: bool,
    ) -> None:
        self.name = name
        self.path = method_path(name)
        self.request = request
        self.response = response
        self.client_streaming = client_streaming
        self.server_streaming = server_streaming

    def __repr__(self) -> str:
        return f"Method({self.path})"


def method_path(rpc: str) -> str:
    """The gRPC path of an rpc, e.g. ``/snakepit.bridge.BridgeService/Ping``."""
    return f"/{SERVICE_NAME}/{rpc}"


METHODS: dict[str, Method] = {
    rpc: Method(rpc, _own(request), _own(response), client_streaming, server_streaming)
    for rpc, request, response, client_streaming, server_streaming in _METHODS
}
"""Every rpc of ``BridgeService`` by name."""
