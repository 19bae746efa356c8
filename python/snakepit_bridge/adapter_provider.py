"""Adapters for calls: making them, their lifecycle hooks, their tool list,
and the shapes a tool's result may take.

An adapter is duck-typed: anything with ``execute_tool(name, arguments,
context)``; ``initialize``, ``cleanup``, ``get_tools`` and
``set_session_context`` (or a ``session_context`` attribute) are used when
present, and hooks may be ``async def``. So adapters are ``Any`` here.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import inspect
import logging
import threading
from typing import Any, Callable, Generator

from . import protocol, serialization
from .base_adapter import BaseAdapter, resolve_awaitable
from .protocol import DynamicMessage
from .session_context import SessionContext

log = logging.getLogger("snakepit.worker")


class AdapterProvider:
    """Makes adapters for calls and runs their lifecycle hooks.

    One adapter per call (``initialize`` before, ``cleanup`` after, always);
    or, with ``per_worker``, one adapter for the process, initialized on
    first use and cleaned up at shutdown.
    """

    def __init__(self, adapter_class: Callable[[], Any], per_worker: bool) -> None:
        self.adapter_class = adapter_class
        self.per_worker = per_worker
        self._lock = threading.Lock()
        self._shared: Any = None
        self._tool_specs: list[DynamicMessage] | None = None

    def open(self, context: SessionContext | None) -> Any:
        """An adapter ready for a call in ``context`` (initialized)."""
        if self.per_worker:
            adapter = self._shared_adapter()
            _set_context(adapter, context)
            return adapter
        adapter = self.adapter_class()
        _set_context(adapter, context)
        try:
            _run_hook(adapter, "initialize")
        except BaseException:
            with contextlib.suppress(Exception):
                _run_hook(adapter, "cleanup")
            raise
        return adapter

    def close(self, adapter: Any, failed: bool) -> None:
        """Ends a call. A failing ``cleanup`` fails the call only if the tool
        itself succeeded; otherwise it is logged."""
        if self.per_worker:
            _set_context(adapter, None)
            return
        try:
            _run_hook(adapter, "cleanup")
        except Exception:
            if not failed:
                raise
            log.exception("cleanup() failed after a failed call")

    def _shared_adapter(self) -> Any:
        with self._lock:
            if self._shared is None:
                adapter = self.adapter_class()
                _run_hook(adapter, "initialize")
                self._shared = adapter
            return self._shared

    def tool_specs(self) -> list[DynamicMessage]:
        """The adapter's tools as ``ToolSpec`` messages (computed once)."""
        with self._lock:
            if self._tool_specs is not None:
                return self._tool_specs
        adapter = self._shared_adapter() if self.per_worker else self.adapter_class()
        specs = [tool_spec_message(info) for info in _tool_list(adapter)]
        with self._lock:
            self._tool_specs = specs
        return specs

    def registrations(self) -> list[DynamicMessage]:
        """The adapter's tools as ``ToolRegistration`` messages, for
        ``RegisterTools`` at start-up. Runs no adapter hook, and not even the
        adapter's ``__init__`` (which may load a model) when the tools come
        from ``@tool`` marks alone (see :func:`_listing_instance`)."""
        with self._lock:
            specs = self._tool_specs
        if specs is None:
            adapter = self._shared if self._shared is not None else _listing_instance(self.adapter_class)
            specs = [tool_spec_message(info) for info in _tool_list(adapter)]
        return [protocol.ToolRegistration.FromString(spec.SerializeToString()) for spec in specs]

    def shutdown(self) -> None:
        """Cleans up the shared adapter, if there is one."""
        with self._lock:
            adapter, self._shared = self._shared, None
        if adapter is not None:
            try:
                _run_hook(adapter, "cleanup")
            except Exception:
                log.exception("cleanup() of the shared adapter failed")


def _listing_instance(adapter_class: Callable[[], Any]) -> Any:
    """An adapter to list the tools of: for a :class:`BaseAdapter` subclass
    that lists them the standard way (from its ``@tool`` marks), an
    instance made without calling ``__init__``; otherwise a normal one."""
    if (
        isinstance(adapter_class, type)
        and issubclass(adapter_class, BaseAdapter)
        and getattr(adapter_class, "describe_tools", None) is BaseAdapter.describe_tools
        and getattr(adapter_class, "get_tools", None) is BaseAdapter.get_tools
    ):
        return adapter_class.__new__(adapter_class)
    return adapter_class()


def _tool_list(adapter: Any) -> list[Any]:
    """What an adapter lists: ``describe_tools()`` (ours, with signatures and
    defaults), else ``get_tools()`` (``ToolInfo``-like objects or messages)."""
    for name in ("describe_tools", "get_tools"):
        lister = getattr(adapter, name, None)
        if callable(lister):
            return list(lister())
    return []


def _set_context(adapter: Any, context: SessionContext | None) -> None:
    setter = getattr(adapter, "set_session_context", None)
    if callable(setter):
        setter(context)
    else:
        with contextlib.suppress(AttributeError):
            adapter.session_context = context


def _run_hook(adapter: Any, name: str) -> None:
    hook = getattr(adapter, name, None)
    if callable(hook):
        resolve_awaitable(hook())


def tool_spec_message(info: Any) -> DynamicMessage:
    """A ``ToolSpec`` from a :class:`~snakepit_bridge.base_adapter.ToolInfo`
    (or from a ``ToolSpec``/``ToolRegistration`` message, which share field
    numbers)."""
    if hasattr(info, "SerializeToString"):
        return protocol.ToolSpec.FromString(info.SerializeToString())
    spec = protocol.ToolSpec(
        name=info.name,
        description=info.description or "",
        supports_streaming=bool(info.supports_streaming),
    )
    spec.metadata.update({str(k): str(v) for k, v in (info.metadata or {}).items()})
    if getattr(info, "signature", ""):
        spec.metadata["signature"] = info.signature
    for parameter in info.parameters:
        message = spec.parameters.add(
            name=parameter.name,
            type=parameter.type,
            description=parameter.description or "",
            required=bool(parameter.required),
        )
        if not parameter.required:
            try:
                message.default_value.CopyFrom(serialization.json_any(parameter.default))
            except ValueError:
                log.warning("default of %s.%s has no JSON form", info.name, parameter.name)
    return spec


def tool_registration_message(info: Any) -> DynamicMessage:
    """A ``ToolRegistration`` from a ``ToolInfo`` (the same fields as
    :func:`tool_spec_message`; the two messages share field numbers)."""
    return protocol.ToolRegistration.FromString(tool_spec_message(info).SerializeToString())


def stream_items(result: Any) -> Generator[Any, None, None]:
    """The items of a streaming tool's result, whatever its shape.

    Generators and iterators are iterated, async generators driven by an
    event loop of their own; any other value is one item. Closing this
    iterator closes the tool's generator, so its ``finally`` runs.
    """
    if inspect.isasyncgen(result):
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    item = loop.run_until_complete(result.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            try:
                loop.run_until_complete(result.aclose())
            finally:
                loop.close()
    elif isinstance(result, collections.abc.Iterator):
        try:
            yield from result
        finally:
            close = getattr(result, "close", None)
            if callable(close):
                close()
    else:
        yield result


def unary_result(result: Any) -> Any:
    """A generator returned to a unary call becomes the list of its items."""
    if inspect.isgenerator(result) or inspect.isasyncgen(result):
        return list(stream_items(result))
    return result
