"""Adapters for the thread profile (``--max-workers N``): N calls at once in
one process.

The worker refuses ``--max-workers`` unless the adapter class declares
``__thread_safe__ = True``, which :class:`ThreadSafeAdapter` does. It also
gives the tools a lock and per-thread storage that are shared by every
instance of the adapter class: the worker makes a fresh adapter per call,
so a per-instance lock would protect nothing.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any, Callable, TypeVar

from .base_adapter import BaseAdapter

F = TypeVar("F", bound=Callable[..., Any])


class ThreadSafeAdapter(BaseAdapter):
    """Base class of adapters whose tools may run concurrently.

    Subclasses get their own class-wide ``RLock`` (:meth:`acquire_lock`) and
    class-wide thread-local storage (:meth:`get_thread_local`,
    :meth:`set_thread_local`).
    """

    __thread_safe__: bool = True

    _snakepit_class_lock: threading.RLock
    _snakepit_thread_local: threading.local

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._snakepit_class_lock = threading.RLock()
        cls._snakepit_thread_local = threading.local()

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

    def clear_thread_local(self) -> None:
        """Forgets everything the current thread stored."""
        type(self)._snakepit_thread_local.__dict__.clear()


ThreadSafeAdapter._snakepit_class_lock = threading.RLock()
ThreadSafeAdapter._snakepit_thread_local = threading.local()


def thread_safe_method(method: F) -> F:
    """Runs an adapter method while holding the adapter class's lock.

    Combines with ``@tool`` in either order. On an adapter that is not a
    :class:`ThreadSafeAdapter` a lock private to that method is used.
    """
    fallback = threading.RLock()

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        acquire = getattr(self, "acquire_lock", None)
        if acquire is None:
            with fallback:
                return method(self, *args, **kwargs)
        with acquire():
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]
