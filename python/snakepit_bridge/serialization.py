"""Value encoding between Python and the wire (protocol.md, "Value encoding").

- A parameter is a ``google.protobuf.Any`` whose ``value`` bytes are UTF-8
  JSON text, whatever its ``type_url``. A packed ``google.protobuf.StringValue``
  (or ``google.protobuf.Value``) message is accepted too, because Snakepit's
  own worker script sends those in callbacks.
- A result is an ``Any`` with ``type_url`` ``type.googleapis.com/snakepit.<kind>``
  and JSON text as its value. Integers stay integers, of any size.
- ``bytes``, ``bytearray`` and ``memoryview`` results travel raw in
  ``binary_result``; ``result`` is then JSON ``null`` of kind ``binary``.
- NaN and infinities have no JSON form: a result holding one fails the call
  with a ``ValueError`` that says where the value is.
- Results are converted before encoding: objects with ``model_dump()``,
  ``to_dict()``, ``_asdict()``, ``tolist()`` or ``isoformat()`` become what
  those return, dataclasses become maps, tuples and sets become lists, non-string dict keys of the
  JSON scalar types become strings, and anything else becomes the marker
  ``{"__ffi_unserializable__": true, "__type__": "module.QualName"}``.
- At most ``SNAKEPIT_MAX_RESULT_ELEMENTS`` values (default 1,000,000) are
  converted per result; a larger result fails with a ``ValueError``.
- A value nests at most :data:`MAX_NESTING` (100) lists/dicts deep, the
  host's limit too; a deeper one fails with a ``ValueError`` naming it
  (the host's JSON parser would refuse past 128 levels).

Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2, wrappers_pb2

from . import protocol
from .protocol import DynamicMessage

TYPE_URL_PREFIX = "type.googleapis.com/"
"""The prefix of every ``type_url`` this module writes."""

PARAMETER_TYPE_URL = TYPE_URL_PREFIX + "google.protobuf.StringValue"
"""The ``type_url`` of JSON parameters sent by a host (and by our callbacks)."""

UNSERIALIZABLE_MARKER = "__ffi_unserializable__"
"""The key that marks a value that could not be converted to JSON."""

MAX_ELEMENTS_ENV = "SNAKEPIT_MAX_RESULT_ELEMENTS"
"""Environment variable that overrides :data:`DEFAULT_MAX_ELEMENTS`."""

DEFAULT_MAX_ELEMENTS = 1_000_000
"""How many values (containers and scalars) one result may hold by default."""

MAX_NESTING = 100
"""How many lists/dicts deep one value may nest (``[1]`` is 1 deep); the same
as the host's limit (``MAX_NESTING`` in src/protocol/value.rs)."""

_BINARY = (bytes, bytearray, memoryview)


def max_elements() -> int:
    """The element limit in force: ``SNAKEPIT_MAX_RESULT_ELEMENTS`` or the default."""
    raw = os.environ.get(MAX_ELEMENTS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_ELEMENTS
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MAX_ELEMENTS_ENV}={raw!r} is not an integer") from None
    return value if value > 0 else DEFAULT_MAX_ELEMENTS


# ---------------------------------------------------------------- decoding


def decode_json_bytes(data: bytes) -> Any:
    """Parses UTF-8 JSON text; empty input is ``None``."""
    if not data:
        return None
    return json.loads(bytes(data).decode("utf-8"))


def decode_any(message: Any) -> Any:
    """Decodes a parameter ``Any`` (anything with ``type_url`` and ``value``).

    The value is read as JSON whatever the ``type_url``. When that fails and
    the ``type_url`` names ``google.protobuf.StringValue`` (or ``Value``), the
    bytes are unpacked as that message instead.
    """
    type_url: str = message.type_url
    data = bytes(message.value)
    packed_string = type_url.endswith("google.protobuf.StringValue")
    if not data:
        return "" if packed_string else None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as json_error:
        if packed_string:
            return wrappers_pb2.StringValue.FromString(data).value
        if type_url.endswith("google.protobuf.Value"):
            return json_format.MessageToDict(struct_pb2.Value.FromString(data))
        raise ValueError(f"parameter of type {type_url or '(no type_url)'} is not UTF-8 JSON: {json_error}") from None


# ---------------------------------------------------------------- conversion


def type_name(value: Any) -> str:
    """``module.QualName`` of the type of ``value``."""
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def unserializable_marker(value: Any) -> dict[str, Any]:
    """The JSON stand-in for a value that has no JSON form."""
    return {UNSERIALIZABLE_MARKER: True, "__type__": type_name(value)}


_CONVERTERS = ("model_dump", "to_dict", "_asdict", "tolist", "isoformat")


class _Converter:
    """One conversion of one value: counts elements and watches for cycles."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.depth = 0
        self.active: set[int] = set()

    def convert(self, value: Any, path: str) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise ValueError(
                f"result has more than {self.limit} elements; return less data, or raise "
                f"the limit with the environment variable {MAX_ELEMENTS_ENV}"
            )
        if value is None or type(value) is bool or type(value) is str:
            return value
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(
                    f"result contains {value!r} at {path}; JSON has no NaN or Infinity, "
                    "so return None or a string instead"
                )
            return float(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, _BINARY):
            # Bytes travel raw only as the whole result, not inside JSON.
            return unserializable_marker(value)
        if isinstance(value, Mapping):
            return self._nested(value, path, self._convert_mapping)
        if hasattr(value, "_asdict") and isinstance(value, tuple):
            return self._nested(value, path, lambda v, p: self.convert(v._asdict(), p))
        if isinstance(value, (list, tuple)):
            return self._nested(value, path, self._convert_sequence)
        if isinstance(value, (set, frozenset)):
            return self._nested(value, path, lambda v, p: self._convert_sequence(_ordered(v), p))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._nested(
                value,
                path,
                lambda v, p: self._convert_mapping({f.name: getattr(v, f.name) for f in dataclasses.fields(v)}, p),
            )
        for method_name in _CONVERTERS:
            method = getattr(value, method_name, None)
            if callable(method):
                return self._nested(value, path, lambda v, p, m=method: self.convert(m(), p))
        return unserializable_marker(value)

    def _nested(self, value: Any, path: str, convert: Any) -> Any:
        key = id(value)
        if key in self.active:
            raise ValueError(f"result contains a circular reference at {path}")
        self.active.add(key)
        try:
            return convert(value, path)
        finally:
            self.active.discard(key)

    def _convert_mapping(self, value: Mapping[Any, Any], path: str) -> dict[str, Any]:
        with self._deeper():
            converted: dict[str, Any] = {}
            for key, item in value.items():
                text = json_key(key, path)
                converted[text] = self.convert(item, f"{path}[{text!r}]")
            return converted

    def _convert_sequence(self, value: Any, path: str) -> list[Any]:
        with self._deeper():
            return [self.convert(item, f"{path}[{index}]") for index, item in enumerate(value)]

    @contextlib.contextmanager
    def _deeper(self) -> Iterator[None]:
        # Counted only where a JSON list or dict is made: a converter such as
        # model_dump() adds no level of its own.
        if self.depth >= MAX_NESTING:
            raise ValueError(
                f"value nests lists/dicts more than {MAX_NESTING} levels deep; "
                f"snakepit values are limited to {MAX_NESTING} levels"
            )
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


def _ordered(values: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return list(values)


def json_key(key: Any, path: str = "$") -> str:
    """A dict key as JSON allows it: strings as they are, JSON scalars as text."""
    if isinstance(key, str):
        return str(key)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float) and math.isfinite(key):
        return repr(float(key))
    raise ValueError(
        f"result has a dict key of type {type_name(key)} ({key!r}) at {path}; JSON object keys must be strings"
    )


def to_jsonable(value: Any, limit: int | None = None) -> Any:
    """Converts ``value`` into plain JSON types (see the module docs).

    Raises ``ValueError`` for NaN/Infinity, circular references, keys that
    cannot become strings, and results larger than the element limit.
    """
    return _Converter(max_elements() if limit is None else limit).convert(value, "$")


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
"""Made once: ``json.dumps`` with options builds an encoder per call. An
encoder holds no state between calls, so threads share it."""


def dumps(value: Any) -> str:
    """Compact JSON text of an already converted value (no NaN allowed)."""
    return _ENCODER.encode(value)


def encode_json(value: Any, limit: int | None = None) -> bytes:
    """Converts and encodes ``value`` as UTF-8 JSON bytes."""
    return dumps(to_jsonable(value, limit)).encode("utf-8")


def kind_of(value: Any) -> str:
    """The ``snakepit.<kind>`` of a converted JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "map"


BINARY_TYPE_URL = f"{TYPE_URL_PREFIX}snakepit.binary"
"""The ``type_url`` of the ``null`` result that stands beside a bytes result,
so that empty bytes stay bytes."""


def is_binary(value: Any) -> bool:
    """Whether a result travels raw in ``binary_result``."""
    return isinstance(value, _BINARY)


_SCALAR_KINDS = {type(None): "null", bool: "boolean", int: "integer", str: "string"}
"""The kinds of the exact types that convert to themselves (the commonest
results: answered without walking them)."""


def json_any(value: Any, limit: int | None = None) -> DynamicMessage:
    """A result ``Any``: ``type.googleapis.com/snakepit.<kind>`` holding JSON text."""
    kind = _SCALAR_KINDS.get(type(value))
    if kind is not None and (limit is None or limit >= 1):
        converted = value
    else:
        converted = to_jsonable(value, limit)
        kind = kind_of(converted)
    return protocol.Any(
        type_url=f"{TYPE_URL_PREFIX}snakepit.{kind}",
        value=dumps(converted).encode("utf-8"),
    )


def encode_result(value: Any, limit: int | None = None) -> tuple[DynamicMessage, bytes | bytearray | memoryview]:
    """The ``(result, binary_result)`` pair of an ``ExecuteToolResponse``.

    A binary result is the tool's own buffer, not a copy (a memoryview keeps
    what it views alive); only a non-contiguous memoryview is copied."""
    if is_binary(value):
        if isinstance(value, memoryview) and not value.c_contiguous:
            value = value.tobytes()
        return protocol.Any(type_url=BINARY_TYPE_URL, value=b"null"), value
    return json_any(value, limit), b""


def parameter_any(value: Any) -> DynamicMessage:
    """A parameter ``Any`` as a host sends it (JSON text, StringValue type_url)."""
    return protocol.Any(type_url=PARAMETER_TYPE_URL, value=encode_json(value))


def encode_chunk(value: Any, limit: int | None = None) -> bytes:
    """The ``ToolChunk.data`` of one streamed value: raw bytes or JSON text."""
    if is_binary(value):
        return bytes(value)
    return encode_json(value, limit)


def host_tool_request(session_id: str, tool_name: str, arguments: dict[str, Any]) -> DynamicMessage:
    """An ``ExecuteElixirToolRequest``: bytes-like arguments raw in
    ``binary_parameters``, the others as JSON ``parameters``."""
    request = protocol.ExecuteElixirToolRequest(session_id=session_id, tool_name=tool_name)
    for name, value in arguments.items():
        if is_binary(value):
            request.binary_parameters[name] = bytes(value)
        else:
            request.parameters[name].CopyFrom(parameter_any(value))
    return request


def decode_host_tool_response(response: DynamicMessage, tool_name: str) -> Any:
    """The decoded result of an ``ExecuteElixirToolResponse``; raises
    ``RuntimeError`` with the host's message when the tool failed."""
    if not response.success:
        raise RuntimeError(response.error_message or f"host tool {tool_name!r} failed")
    if response.binary_result or response.result.type_url == BINARY_TYPE_URL:
        return bytes(response.binary_result)
    if not response.HasField("result"):
        return None
    return decode_any(response.result)


# ---------------------------------------------------------------- Snakepit's names


class TypeSerializer:
    """Snakepit's entry points to the value encoding, as static methods."""

    @staticmethod
    def encode_any(value: Any, var_type: str = "") -> tuple[DynamicMessage, bytes | None]:
        """``(google.protobuf.Any, binary)`` for ``value``.

        Bytes travel raw as the second item (the ``Any`` is then JSON
        ``null`` of kind ``binary``); anything else is JSON text in the
        ``Any`` and ``None``. ``var_type`` (Snakepit's declared type, e.g.
        ``"float"``) names the ``type_url`` kind when given; the JSON text is
        the same either way, since readers go by the JSON.
        """
        if is_binary(value):
            return protocol.Any(type_url=f"{TYPE_URL_PREFIX}snakepit.binary", value=b"null"), bytes(value)
        message = json_any(value)
        if var_type:
            message.type_url = f"{TYPE_URL_PREFIX}snakepit.{var_type}"
        return message, None

    @staticmethod
    def decode_any(any_msg: Any, binary_data: bytes | None = None) -> Any:
        """The value of an ``Any`` made by :meth:`encode_any` (or by a host):
        ``binary_data`` when given and not empty, else the decoded JSON."""
        if binary_data:
            return bytes(binary_data)
        return decode_any(any_msg)


class GracefulJSONEncoder(json.JSONEncoder):
    """A ``json.JSONEncoder`` that never raises on a value JSON cannot hold:
    what :func:`to_jsonable` converts (``model_dump()``, ``tolist()``,
    dataclasses, sets, ...) is converted, anything else becomes the
    unserializable marker ``{"__ffi_unserializable__": true, "__type__": ...}``.
    """

    def default(self, o: Any) -> Any:
        try:
            return to_jsonable(o)
        except (ValueError, TypeError, RecursionError):
            return unserializable_marker(o)


# ---------------------------------------------------------------- errors


def error_payload(
    error: BaseException,
    context: Mapping[str, Any] | None = None,
    max_traceback_chars: int | None = None,
) -> str:
    """The JSON ``error_message`` of a failed call.

    ``{"type", "message", "traceback", "stacktrace", "context"}``: the
    traceback is the full formatted one, chained causes included;
    ``context`` is ``error.context`` (when it is a dict) merged over
    ``context``. ``max_traceback_chars`` keeps only the end of the traceback,
    for places with a size limit such as a gRPC status message.
    """
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error
        message = f"<unprintable {type(error).__name__}>"
    formatted = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    if max_traceback_chars is not None and len(formatted) > max_traceback_chars:
        formatted = "...\n" + formatted[-max_traceback_chars:]
    stacktrace = [
        {"file": frame.filename, "line": frame.lineno, "function": frame.name}
        for frame in traceback.extract_tb(error.__traceback__)
    ]
    merged: dict[str, Any] = dict(context or {})
    own = getattr(error, "context", None)
    if isinstance(own, Mapping):
        merged.update(own)
    try:
        safe_context = to_jsonable(merged, limit=10_000)
    except ValueError:
        safe_context = {str(k): repr(v) for k, v in merged.items()}
    payload = {
        "type": type(error).__name__,
        "message": message,
        "traceback": formatted,
        "stacktrace": stacktrace,
        "context": safe_context,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=repr)
