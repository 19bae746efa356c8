"""Telemetry events from tools, and the correlation id of the call.

A tool reports what it measured with :func:`emit` or :func:`span`; events
go to the backend (:func:`set_backend`), by default a bounded
:class:`EventBuffer` of :data:`DEFAULT_BUFFER_SIZE` events that the worker
drains towards the host. The buffer never blocks and never grows past its
capacity: when full, the oldest event is dropped and counted
(:attr:`EventBuffer.dropped`). :func:`emit` never raises into a tool.

The correlation id of the call in progress comes from the request metadata
(:data:`CORRELATION_HEADER`); the worker sets it around each call
(:func:`set_correlation_id` / :func:`reset_correlation_id`), tools read it
with :func:`get_correlation_id`, and events and log lines carry it.

The OpenTelemetry names (:func:`setup_tracing`, :func:`get_tracer`,
:func:`otel_span`, :data:`correlation_filter`) work without the
OpenTelemetry packages (as no-ops). Importing this module needs neither
grpcio nor protobuf.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

CORRELATION_HEADER = "x-snakepit-correlation-id"
"""The request metadata key (and gRPC header) of the correlation id."""

DEFAULT_BUFFER_SIZE = 10_000
"""How many events the default buffer holds before it drops the oldest."""

Measurement = Union[int, float, str]
"""What a measurement may be (anything else is sent as its ``str``)."""

log = logging.getLogger("snakepit.telemetry")

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("snakepit_correlation_id", default=None)


# ---------------------------------------------------------------- correlation ids


def new_correlation_id() -> str:
    """A fresh random correlation id (32 hex digits)."""
    return uuid.uuid4().hex


def set_correlation_id(correlation_id: str | None) -> contextvars.Token[str | None]:
    """Makes ``correlation_id`` the current one (for this thread or task);
    pass the returned token to :func:`reset_correlation_id` to restore."""
    return _correlation_id.set(correlation_id or None)


def reset_correlation_id(token: contextvars.Token[str | None]) -> None:
    """Restores the correlation id that :func:`set_correlation_id` replaced."""
    _correlation_id.reset(token)


def get_correlation_id() -> str | None:
    """The current correlation id: the one the call arrived with, or ``None``."""
    return _correlation_id.get()


def correlation_id_from_metadata(metadata: Mapping[str, str] | Any) -> str | None:
    """The correlation id in request metadata (a map, or gRPC's
    ``(key, value)`` pairs), or ``None``."""
    if isinstance(metadata, Mapping):
        value = metadata.get(CORRELATION_HEADER)
        return str(value) if value else None
    for key, value in metadata or ():
        if str(key).lower() == CORRELATION_HEADER and value:
            return str(value)
    return None


def outgoing_metadata() -> list[tuple[str, str]]:
    """gRPC metadata that carries the current correlation id to another
    service (empty when there is none)."""
    correlation_id = get_correlation_id()
    return [(CORRELATION_HEADER, correlation_id)] if correlation_id else []


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """One telemetry event.

    ``name`` is dotted (``"model.predict.stop"``); ``event_parts`` is it
    split at the dots, as the wire's ``TelemetryEvent`` carries it.
    """

    name: str
    measurements: dict[str, Measurement]
    metadata: dict[str, str] = field(default_factory=dict)
    timestamp_ns: int = 0
    correlation_id: str | None = None

    @property
    def event_parts(self) -> list[str]:
        """The name split at the dots."""
        return self.name.split(".")


class Backend(Protocol):
    """Where :func:`emit` sends events."""

    def emit(self, event: Event) -> None:
        """Takes one event; must not block."""


class EventBuffer:
    """A bounded, thread-safe queue of events that drops the oldest when full.

    ``enabled`` switches recording off and on; ``sampling_rate`` (0 to 1)
    keeps that share of events at random. Both may be set by the host's
    telemetry controls. :meth:`drain` takes events out in order.
    """

    def __init__(self, capacity: int = DEFAULT_BUFFER_SIZE) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.enabled = True
        self.sampling_rate = 1.0
        self._events: collections.deque[Event] = collections.deque()
        self._ready = threading.Condition(threading.Lock())
        self._dropped = 0
        self._emitted = 0

    def emit(self, event: Event) -> None:
        """Queues ``event`` (dropping the oldest one when full); never blocks."""
        if not self.enabled:
            return
        if self.sampling_rate < 1.0 and random.random() >= self.sampling_rate:  # noqa: S311 - sampling
            return
        with self._ready:
            if len(self._events) >= self.capacity:
                self._events.popleft()
                self._dropped += 1
            self._events.append(event)
            self._emitted += 1
            self._ready.notify()

    def drain(self, max_events: int | None = None, timeout: float | None = 0.0) -> list[Event]:
        """Takes up to ``max_events`` events out, oldest first, waiting up to
        ``timeout`` seconds (``None``: for ever) for the first one."""
        with self._ready:
            if not self._events and timeout != 0.0:
                self._ready.wait_for(lambda: bool(self._events), timeout)
            count = len(self._events) if max_events is None else min(max_events, len(self._events))
            return [self._events.popleft() for _ in range(count)]

    @property
    def dropped(self) -> int:
        """How many events were dropped because the buffer was full."""
        with self._ready:
            return self._dropped

    def stats(self) -> dict[str, int]:
        """``{"emitted", "dropped", "buffered", "capacity"}``."""
        with self._ready:
            return {
                "emitted": self._emitted,
                "dropped": self._dropped,
                "buffered": len(self._events),
                "capacity": self.capacity,
            }

    def __len__(self) -> int:
        with self._ready:
            return len(self._events)


_backend: Backend | None = EventBuffer()


def set_backend(backend: Backend | None) -> None:
    """Sends events to ``backend`` from now on (``None``: nowhere)."""
    global _backend
    _backend = backend


def get_backend() -> Backend | None:
    """The backend events go to (by default an :class:`EventBuffer`)."""
    return _backend


def is_enabled() -> bool:
    """Whether :func:`emit` records anything now."""
    backend = _backend
    return backend is not None and bool(getattr(backend, "enabled", True))


def _measurement(value: Any) -> Measurement:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def emit(
    event: str,
    measurements: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
) -> None:
    """Records one event: ``event`` a dotted name, ``measurements`` numbers
    (or strings), ``metadata`` values sent as strings. The correlation id is
    the current one unless given. Never raises: a failing backend is logged."""
    backend = _backend
    if backend is None or not getattr(backend, "enabled", True):
        return
    try:
        record = Event(
            name=str(event),
            measurements={str(k): _measurement(v) for k, v in dict(measurements or {}).items()},
            metadata={str(k): str(v) for k, v in dict(metadata or {}).items()},
            timestamp_ns=time.time_ns(),
            correlation_id=correlation_id or get_correlation_id(),
        )
        backend.emit(record)
    except Exception as error:  # noqa: BLE001 - telemetry must never fail a tool
        log.debug("telemetry event %s not recorded: %s", event, error)


@contextlib.contextmanager
def span(
    operation: str, metadata: Mapping[str, Any] | None = None, correlation_id: str | None = None
) -> Iterator[None]:
    """Times the ``with`` block: emits ``<operation>.start``, then
    ``<operation>.stop`` with ``duration_ns``, or, when the block raises,
    ``<operation>.exception`` with ``duration_ns`` and the error (``error``,
    ``error_type`` in the metadata) and re-raises."""
    base = dict(metadata or {})
    emit(f"{operation}.start", {"system_time_ns": time.time_ns()}, base, correlation_id)
    started = time.perf_counter_ns()
    try:
        yield
    except BaseException as error:
        failed = dict(base, error=str(error), error_type=type(error).__name__)
        emit(f"{operation}.exception", {"duration_ns": time.perf_counter_ns() - started}, failed, correlation_id)
        raise
    emit(f"{operation}.stop", {"duration_ns": time.perf_counter_ns() - started}, base, correlation_id)


# ---------------------------------------------------------------- OpenTelemetry names


class _CorrelationFilter(logging.Filter):
    """Puts the current correlation id on every record (``correlation_id``,
    ``"-"`` when none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = get_correlation_id() or "-"
        return True


correlation_filter: logging.Filter = _CorrelationFilter()
"""A logging filter that adds ``record.correlation_id``."""

_tracing_ready = False


def setup_tracing(service_name: str = "snakepit-worker") -> bool:
    """Sets up OpenTelemetry tracing when its packages are installed;
    returns whether it did (``False``, a no-op, without them)."""
    global _tracing_ready
    try:
        from opentelemetry import trace  # type: ignore[import-not-found,unused-ignore]
        from opentelemetry.sdk.resources import Resource  # type: ignore[import-not-found,unused-ignore]
        from opentelemetry.sdk.trace import TracerProvider  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    if not _tracing_ready:
        trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": service_name})))
        _tracing_ready = True
    return True


class _NoTracer:
    """Stands in for a tracer when OpenTelemetry is not installed."""

    @contextlib.contextmanager
    def start_as_current_span(self, name: str, **_kwargs: Any) -> Iterator[None]:
        yield None


def get_tracer(name: str = "snakepit_bridge") -> Any:
    """OpenTelemetry's tracer, or one whose spans do nothing."""
    try:
        from opentelemetry import trace
    except ImportError:
        return _NoTracer()
    return trace.get_tracer(name)


@contextlib.contextmanager
def otel_span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """An OpenTelemetry span (with the correlation id as an attribute), or
    nothing when OpenTelemetry is not installed; yields the span or ``None``."""
    with get_tracer().start_as_current_span(name) as current:
        if current is not None:
            for key, value in dict(attributes or {}).items():
                current.set_attribute(str(key), value)
            correlation_id = get_correlation_id()
            if correlation_id:
                current.set_attribute("correlation_id", correlation_id)
        yield current
