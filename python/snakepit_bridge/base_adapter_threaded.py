"""Adapters for the thread profile (``--max-workers N``): N calls at once in
one process.

The worker refuses ``--max-workers`` unless the adapter class declares
``__thread_safe__ = True``, which :class:`ThreadSafeAdapter` does. It also
gives the tools a lock and per-thread storage that are shared by every
instance of the adapter class: the worker makes a fresh adapter per call,
so a per-instance lock would protect nothing.

Snakepit's names are all here: ``ThreadSafeAdapter`` (with ``get_stats``
and ``track_request``), ``thread_safe_method``, ``require_thread_safe``,
``validate_thread_safety`` and ``tool`` re-exported.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable, TypeVar

from .base_adapter import BaseAdapter, tool

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "ThreadSafeAdapter",
    "require_thread_safe",
    "thread_safe_method",
    "tool",
    "validate_thread_safety",
]

log = logging.getLogger("snakepit.adapter")


class _RequestStats:
    """Counts of the requests an adapter class saw, safe across threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = 0
        self.in_flight = 0
        self.errors = 0
        self.per_thread: dict[str, int] = {}

    def started(self) -> None:
        name = threading.current_thread().name
        with self.lock:
            self.total += 1
            self.in_flight += 1
            self.per_thread[name] = self.per_thread.get(name, 0) + 1

    def ended(self, failed: bool) -> None:
        with self.lock:
            self.in_flight -= 1
            if failed:
                self.errors += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "total_requests": self.total,
                "active_requests": self.in_flight,
                "failed_requests": self.errors,
                "requests_per_thread": dict(self.per_thread),
                "threads_seen": len(self.per_thread),
            }


class ThreadSafeAdapter(BaseAdapter):
    """Base class of adapters whose tools may run concurrently.

    Subclasses get their own class-wide ``RLock`` (:meth:`acquire_lock`),
    class-wide thread-local storage (:meth:`get_thread_local`,
    :meth:`set_thread_local`) and class-wide request counts
    (:meth:`get_stats`, :meth:`track_request`).
    """

    __thread_safe__: bool = True

    _snakepit_class_lock: threading.RLock
    _snakepit_thread_local: threading.local
    _snakepit_stats: _RequestStats

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._snakepit_class_lock = threading.RLock()
        cls._snakepit_thread_local = threading.local()
        cls._snakepit_stats = _RequestStats()

    @contextlib.contextmanager
    def acquire_lock(self) -> Iterator[None]:
        """Holds the adapter class's lock (re-entrant) for the ``with`` block."""
        with type(self)._snakepit_class_lock:
            yield

    def get_thread_local(self, key: str, default: Any = None) -> Any:
        """A value stored by this thread with :meth:`set_thread_local`."""
        return getattr(type(self)._snakepit_thread_local, key, default)

    def set_thread_local(self, key: str, value: Any) -> None:
        """Stores a value visible only to the current thread (for this adapter class)."""
        setattr(type(self)._snakepit_thread_local, key, value)

    def clear_thread_local(self, key: str | None = None) -> None:
        """Forgets ``key`` for the current thread, or everything it stored
        when ``key`` is ``None``."""
        storage = type(self)._snakepit_thread_local.__dict__
        if key is None:
            storage.clear()
        else:
            storage.pop(key, None)

    @contextlib.contextmanager
    def track_request(self, request_id: str | None = None) -> Iterator[str]:
        """Counts the ``with`` block as one request in :meth:`get_stats`
        (failed when it raises); yields the request id (made up when not given)."""
        stats = type(self)._snakepit_stats
        rid = request_id or f"{threading.current_thread().name}-{time.monotonic_ns()}"
        stats.started()
        failed = True
        try:
            yield rid
            failed = False
        finally:
            stats.ended(failed)

    def get_stats(self) -> dict[str, Any]:
        """The adapter class's request counts: ``total_requests``,
        ``active_requests`` (in flight now), ``failed_requests``,
        ``requests_per_thread`` (thread name -> count) and ``threads_seen``."""
        return type(self)._snakepit_stats.snapshot()


ThreadSafeAdapter._snakepit_class_lock = threading.RLock()
ThreadSafeAdapter._snakepit_thread_local = threading.local()
ThreadSafeAdapter._snakepit_stats = _RequestStats()


def thread_safe_method(method: F) -> F:
    """Counts each call of an adapter method as a request in
    :meth:`ThreadSafeAdapter.get_stats` (Snakepit's meaning).

    It does not serialise calls: guard shared state with
    :meth:`ThreadSafeAdapter.acquire_lock`. Combines with ``@tool`` in
    either order; on an adapter without ``track_request`` it only calls
    the method.
    """

    @functools.wraps(method)
    def tracked(self: Any, *args: Any, **kwargs: Any) -> Any:
        track = getattr(self, "track_request", None)
        if track is None:
            return method(self, *args, **kwargs)
        with track():
            return method(self, *args, **kwargs)

    return tracked  # type: ignore[return-value]


def require_thread_safe(func: F) -> F:
    """Refuses (``RuntimeError``) to run the method on an adapter that is not
    marked ``__thread_safe__``."""

    @functools.wraps(func)
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(type(self), "__thread_safe__", False):
            raise RuntimeError(
                f"{type(self).__name__}.{func.__name__} needs a thread-safe adapter (__thread_safe__ = True)"
            )
        return func(self, *args, **kwargs)

    return checked  # type: ignore[return-value]


def validate_thread_safety(adapter_class: type) -> bool:
    """Whether ``adapter_class`` may run in the thread profile (marked
    ``__thread_safe__``); logs a warning when it is not."""
    safe = bool(getattr(adapter_class, "__thread_safe__", False))
    if not safe:
        log.warning("%s is not marked thread-safe (__thread_safe__ = True)", adapter_class.__name__)
    return safe
