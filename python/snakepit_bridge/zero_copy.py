"""References to large buffers passed out of band (Snakepit's ``ZeroCopyRef``).

A :class:`ZeroCopyRef` only describes a buffer that lives elsewhere (shared
memory, a file, a DLPack or Arrow handle); it travels as a small JSON map,
``to_payload()``, and is read back with ``from_payload()``. Nothing is
mapped or copied here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ZERO_COPY_MARKER = "__snakepit_zero_copy__"
"""The key that marks a payload map as a :class:`ZeroCopyRef`."""

_FIELDS = ("kind", "device", "dtype", "shape", "owner", "ref", "copy", "bytes")


@dataclass
class ZeroCopyRef:
    """A reference to a buffer held out of band.

    Attributes:
        kind: the kind of handle, e.g. ``"dlpack"``, ``"arrow"``, ``"shm"``.
        ref: where the buffer is (a shared-memory name, a path, a handle id).
        device: ``"cpu"``, ``"cuda:0"``, ...
        dtype: the element type, e.g. ``"float32"``.
        shape: the array's shape, when it is one.
        owner: who frees the buffer (``"python"``, ``"host"``).
        copy: whether the receiver got a copy rather than the buffer.
        bytes: the buffer's size in bytes.
        metadata: anything else, as a JSON map.
    """

    kind: str
    ref: Any = None
    device: str | None = None
    dtype: str | None = None
    shape: list[int] | None = None
    owner: str | None = None
    copy: bool = False
    bytes: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ZeroCopyRef:
        """Reads a payload map; ``ValueError`` when it has no ``kind``."""
        if not isinstance(payload, dict) or not payload.get("kind"):
            raise ValueError(f"a zero-copy payload needs a 'kind', got {payload!r}")
        shape = payload.get("shape")
        size = payload.get("bytes")
        return cls(
            kind=str(payload["kind"]),
            ref=payload.get("ref"),
            device=payload.get("device"),
            dtype=payload.get("dtype"),
            shape=[int(n) for n in shape] if shape is not None else None,
            owner=payload.get("owner"),
            copy=bool(payload.get("copy", False)),
            bytes=int(size) if size is not None else None,
            metadata=dict(payload.get("metadata") or {}),
        )

    def to_payload(self) -> dict[str, Any]:
        """The JSON map that travels: the fields, and the marker key."""
        payload: dict[str, Any] = {ZERO_COPY_MARKER: True}
        for name in _FIELDS:
            payload[name] = getattr(self, name)
        payload["metadata"] = dict(self.metadata)
        return payload

    @staticmethod
    def is_payload(value: Any) -> bool:
        """Whether ``value`` is a map made by :meth:`to_payload`."""
        return isinstance(value, dict) and value.get(ZERO_COPY_MARKER) is True
