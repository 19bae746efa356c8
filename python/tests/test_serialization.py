"""Value encoding: parameters in, results and errors out."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import math

import pytest
from google.protobuf import any_pb2, wrappers_pb2

from snakepit_bridge import protocol, serialization
from snakepit_bridge.serialization import (
    decode_any,
    encode_chunk,
    encode_result,
    error_payload,
    parameter_any,
    to_jsonable,
)


def result_of(value: object) -> tuple[str, object, bytes]:
    """(kind, decoded JSON, binary) of an encoded result."""
    result, binary = encode_result(value)
    assert result.type_url.startswith("type.googleapis.com/snakepit.")
    return result.type_url.rsplit(".", 1)[1], json.loads(result.value.decode("utf-8")), binary


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**80,
        0.1,
        "héllo ✓ 🐍",
        "",
        True,
        False,
        None,
        [1, [2, {"a": None}]],
        {"k": {"n": [1.5]}},
    ],
)
def test_parameters_round_trip(value: object) -> None:
    any_message = parameter_any(value)
    assert any_message.type_url == "type.googleapis.com/google.protobuf.StringValue"
    decoded = decode_any(protocol.Any.FromString(any_message.SerializeToString()))
    assert decoded == value and type(decoded) is type(value)


def test_parameter_json_is_read_whatever_the_type_url() -> None:
    for type_url in ("", "type.googleapis.com/google.protobuf.Value", "x/anything"):
        assert decode_any(any_pb2.Any(type_url=type_url, value=b'{"a":[1,2]}')) == {"a": [1, 2]}


def test_packed_string_value_is_unpacked() -> None:
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.StringValue(value="hello world"))
    assert decode_any(packed) == "hello world"
    # A string that happens to look like JSON once packed still decodes as the string.
    packed.Pack(wrappers_pb2.StringValue(value="42"))
    assert decode_any(packed) == "42"
    packed.Pack(wrappers_pb2.StringValue(value=""))
    assert decode_any(packed) == ""


def test_undecodable_parameter_names_its_type() -> None:
    with pytest.raises(ValueError, match="snakepit.custom"):
        decode_any(any_pb2.Any(type_url="type.googleapis.com/snakepit.custom", value=b"\xff\x00"))


# ---------------------------------------------------------------- results


def test_kinds_and_integers_stay_integers() -> None:
    assert result_of({"a": 1}) == ("map", {"a": 1}, b"")
    assert result_of([1, 2]) == ("list", [1, 2], b"")
    assert result_of("s") == ("string", "s", b"")
    assert result_of(1.5) == ("float", 1.5, b"")
    assert result_of(True) == ("boolean", True, b"")
    assert result_of(None) == ("null", None, b"")
    kind, value, _ = result_of(2**63 - 1)
    assert kind == "integer" and value == 2**63 - 1 and isinstance(value, int)
    result, _ = encode_result([2**70, -(2**63), 3])
    assert result.value == b"[1180591620717411303424,-9223372036854775808,3]"


def test_text_is_compact_utf8() -> None:
    result, _ = encode_result({"u": "héllo ✓ 🐍", "n": [1, 2]})
    assert result.value == '{"u":"héllo ✓ 🐍","n":[1,2]}'.encode()


def test_bytes_travel_in_binary_result() -> None:
    for value in (b"\x00\x01\xff", bytearray(b"ab"), memoryview(b"xyz")):
        result, binary = encode_result(value)
        assert result.type_url == "type.googleapis.com/snakepit.binary"
        assert result.value == b"null"
        assert binary == bytes(value)
    assert encode_chunk(b"\x00raw") == b"\x00raw"
    assert encode_chunk({"i": 1}) == b'{"i":1}'


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_fail_with_a_clear_error(bad: float) -> None:
    with pytest.raises(ValueError, match=r"JSON has no NaN or Infinity") as caught:
        encode_result({"values": [1.0, bad]})
    assert "$['values'][1]" in str(caught.value)


def test_unserializable_objects_become_a_marker() -> None:
    class Opaque:
        pass

    _, value, _ = result_of({"x": Opaque(), "n": 1})
    assert value == {
        "x": {"__ffi_unserializable__": True, "__type__": f"{__name__}.{Opaque.__qualname__}"},
        "n": 1,
    }


def test_objects_are_converted_gracefully() -> None:
    class Model:
        def model_dump(self) -> dict:
            return {"when": datetime.date(2024, 1, 2), "tags": ("a", "b")}

    class Legacy:
        def to_dict(self) -> dict:
            return {"ok": True}

    class Array:
        def tolist(self) -> list:
            return [[1, 2], [3, 4]]

    Point = collections.namedtuple("Point", "x y")

    @dataclasses.dataclass
    class Pair:
        left: int
        right: list

    value = {
        "model": Model(),
        "legacy": Legacy(),
        "array": Array(),
        "point": Point(1, 2),
        "time": datetime.datetime(2024, 5, 6, 7, 8, 9),
        "tuple": (1, (2, 3)),
        "set": {3, 1, 2},
        "pair": Pair(1, [Point(0, 0)]),
        1: "int key",
        None: "none key",
    }
    assert to_jsonable(value) == {
        "model": {"when": "2024-01-02", "tags": ["a", "b"]},
        "legacy": {"ok": True},
        "array": [[1, 2], [3, 4]],
        "point": {"x": 1, "y": 2},
        "time": "2024-05-06T07:08:09",
        "tuple": [1, [2, 3]],
        "set": [1, 2, 3],
        "pair": {"left": 1, "right": [{"x": 0, "y": 0}]},
        "1": "int key",
        "null": "none key",
    }


def test_non_scalar_dict_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="dict key of type builtins.tuple"):
        to_jsonable({(1, 2): "x"})


def test_circular_references_are_refused() -> None:
    loop: list = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match="circular"):
        to_jsonable(loop)
    shared = [1]
    assert to_jsonable([shared, shared]) == [[1], [1]]


def test_element_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(to_jsonable(list(range(999)))) == 999  # 1000 elements with the list itself
    monkeypatch.setenv(serialization.MAX_ELEMENTS_ENV, "1000")
    assert len(to_jsonable(list(range(999)))) == 999
    with pytest.raises(ValueError, match=r"more than 1000 elements.*SNAKEPIT_MAX_RESULT_ELEMENTS"):
        encode_result(list(range(1000)))
    with pytest.raises(ValueError, match="more than 3 elements"):
        to_jsonable({"a": [1, 2]}, limit=3)


def test_default_element_limit_is_one_million(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(serialization.MAX_ELEMENTS_ENV, raising=False)
    assert serialization.max_elements() == 1_000_000
    with pytest.raises(ValueError, match="more than 1000000 elements"):
        to_jsonable([0] * 1_000_000)


# ---------------------------------------------------------------- errors


class WithContext(Exception):
    def __init__(self) -> None:
        super().__init__("with context")
        self.context = {"tool": "t", "argument": "a"}


def test_error_payload_has_type_message_traceback_and_frames() -> None:
    def inner() -> None:
        raise KeyError("inner cause")

    try:
        try:
            inner()
        except KeyError as cause:
            raise ValueError("outer") from cause
    except ValueError as error:
        payload = json.loads(error_payload(error, {"tool": "chain"}))
    assert payload["type"] == "ValueError"
    assert payload["message"] == "outer"
    assert "KeyError: 'inner cause'" in payload["traceback"]
    assert "direct cause of the following exception" in payload["traceback"]
    assert payload["traceback"].rstrip().endswith("ValueError: outer")
    assert payload["context"] == {"tool": "chain"}
    frame = payload["stacktrace"][-1]
    assert set(frame) == {"file", "line", "function"}
    assert frame["file"] == __file__ and isinstance(frame["line"], int)


def test_error_payload_takes_the_exception_context() -> None:
    try:
        raise WithContext()
    except WithContext as error:
        payload = json.loads(error_payload(error, {"tool": "default", "extra": 1}))
    assert payload["context"] == {"tool": "t", "argument": "a", "extra": 1}


def test_error_payload_traceback_can_be_shortened() -> None:
    try:
        raise RuntimeError("x" * 5000)
    except RuntimeError as error:
        payload = json.loads(error_payload(error, max_traceback_chars=100))
    assert len(payload["traceback"]) <= 104 and payload["traceback"].startswith("...\n")
    assert len(payload["message"]) == 5000


def _nested(depth: int) -> object:
    value: object = "core"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_values_nest_up_to_the_limit_and_no_deeper() -> None:
    at_limit = _nested(serialization.MAX_NESTING)
    assert json.loads(serialization.encode_json(at_limit)) == at_limit
    assert json.loads(serialization.encode_chunk(at_limit)) == at_limit
    for encode in (serialization.encode_json, serialization.encode_chunk, serialization.encode_result):
        with pytest.raises(ValueError, match="more than 100 levels deep"):
            encode(_nested(serialization.MAX_NESTING + 1))
    # Far deeper than Python's recursion limit: still the same error.
    with pytest.raises(ValueError, match="100 levels"):
        serialization.encode_json(_nested(5000))
