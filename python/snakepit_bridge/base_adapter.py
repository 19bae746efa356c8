"""Adapters and tools: the extension point of the Python side.

An adapter is a class whose ``@tool`` methods the host can call::

    class MathAdapter(BaseAdapter):
        @tool(description="Adds two numbers")
        def add(self, a: float, b: float) -> float:
            return a + b

The worker makes an adapter (one per call, or one per process with
``--adapter-per-worker``), gives it a :class:`SessionContext`, calls
``initialize()``, then ``execute_tool(name, arguments, context)``, then
``cleanup()``. The default ``execute_tool`` finds the ``@tool`` method,
checks the arguments against its signature and calls it; an adapter may
override ``execute_tool`` to dispatch by itself (as Snakepit adapters do).
"""

from __future__ import annotations

import asyncio
import collections.abc
import functools
import inspect
import logging
import os
import re
import threading
import types
import typing
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar, overload

if TYPE_CHECKING:
    from .protocol import DynamicMessage
    from .session_context import SessionContext

F = TypeVar("F", bound=Callable[..., Any])

_TOOL_ATTRIBUTE = "__snakepit_tool__"

SNAKEPIT_METADATA_ATTRIBUTE = "_tool_metadata"
"""Where ``@tool`` puts its :class:`ToolMetadata` (Snakepit's attribute name;
some adapters read it)."""

log = logging.getLogger("snakepit.adapter")


# ---------------------------------------------------------------- errors


class AdapterError(Exception):
    """Base of the errors the adapter machinery raises for a bad call.

    ``context`` is a JSON-able dict that the worker puts into the error
    payload, so the host can tell the user exactly what was wrong.
    """

    def __init__(self, message: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.context: dict[str, Any] = dict(context or {})


class ToolNotFoundError(AdapterError, AttributeError):
    """No tool of that name. ``context``: ``{"tool", "available"}``.

    Also an ``AttributeError``, which is what Snakepit's ``call_tool``
    raises for an unknown name (with ``message``, its wording).
    """

    def __init__(
        self,
        tool_name: str,
        available: collections.abc.Iterable[str],
        adapter: str = "",
        message: str | None = None,
    ) -> None:
        names = sorted(available)
        where = f" on {adapter}" if adapter else ""
        listing = ", ".join(names) if names else "(none)"
        super().__init__(
            message or f"no tool named {tool_name!r}{where}; available tools: {listing}",
            {"tool": tool_name, "available": names},
        )


class InvalidArgumentsError(AdapterError):
    """Arguments that do not fit the tool's signature.

    ``context``: ``{"tool", "argument", "signature"}``; ``argument`` is the
    offending argument's name, or ``None`` when no single one is to blame.
    The message does not repeat the signature: the host adds it from
    ``context``.
    """

    def __init__(self, message: str, tool_name: str, argument: str | None, signature: str) -> None:
        super().__init__(message, {"tool": tool_name, "argument": argument, "signature": signature})
        self.signature = signature


# ---------------------------------------------------------------- tool marker


@dataclass(frozen=True)
class ToolMeta:
    """What ``@tool`` records on a method."""

    name: str | None = None
    description: str = ""
    supports_streaming: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    required_variables: tuple[str, ...] = ()


@dataclass
class ToolMetadata:
    """Snakepit's record of a ``@tool`` mark, kept as ``func._tool_metadata``.

    ``description`` is the one given to ``@tool``, or the docstring;
    ``parameters`` is left empty by ``@tool`` (the parameters are read from
    the signature when the tools are listed); ``required_variables`` is kept
    for adapters that read it and published in the tool's metadata.
    """

    description: str = ""
    supports_streaming: bool = False
    parameters: list[dict[str, Any]] = field(default_factory=list)
    required_variables: list[str] = field(default_factory=list)


@overload
def tool(func: F, /) -> F: ...


@overload
def tool(
    description: str,
    /,
    supports_streaming: bool = False,
    required_variables: list[str] | None = None,
    *,
    name: str | None = None,
    **metadata: Any,
) -> Callable[[F], F]: ...


@overload
def tool(
    *,
    description: str = "",
    supports_streaming: bool = False,
    required_variables: list[str] | None = None,
    name: str | None = None,
    **metadata: Any,
) -> Callable[[F], F]: ...


def tool(
    func: Any = None,
    /,
    supports_streaming: bool = False,
    required_variables: list[str] | None = None,
    *,
    description: str = "",
    name: str | None = None,
    **metadata: Any,
) -> Any:
    """Marks an adapter method as a tool the host can call.

    Usable bare (``@tool``) or with options, Snakepit's (``@tool(description,
    supports_streaming, required_variables)``, positionally or by keyword)
    and ours (``name="other_name"``; extra keyword arguments become string
    metadata of the tool spec). The description falls back to the first
    paragraph of the docstring. A streaming tool is a generator (or async
    generator) whose items are sent one chunk each. The mark is readable as
    ``func._tool_metadata`` (a :class:`ToolMetadata`).
    """
    if isinstance(func, str):
        description, func = func, None
    variables = tuple(str(v) for v in (required_variables or ()))

    def mark(target: F) -> F:
        function = _function_of(target)
        extra = {str(k): str(v) for k, v in metadata.items()}
        if variables:
            extra.setdefault("required_variables", ",".join(variables))
        meta = ToolMeta(
            name=name,
            description=description,
            supports_streaming=supports_streaming,
            metadata=extra,
            required_variables=variables,
        )
        setattr(function, _TOOL_ATTRIBUTE, meta)
        setattr(
            function,
            SNAKEPIT_METADATA_ATTRIBUTE,
            ToolMetadata(
                description=description or summary_of(inspect.getdoc(function)),
                supports_streaming=supports_streaming,
                required_variables=list(variables),
            ),
        )
        return target

    if func is not None:
        return mark(func)
    return mark


def _function_of(attribute: Any) -> Any:
    """The function inside a staticmethod/classmethod, or the attribute itself."""
    if isinstance(attribute, (staticmethod, classmethod)):
        return attribute.__func__
    return attribute


def tool_meta(attribute: Any) -> ToolMeta | None:
    """The ``@tool`` marker of a function or method, if it has one.

    A function that only carries Snakepit's ``_tool_metadata`` (marked by
    other code than our ``@tool``) counts as a tool too.
    """
    function = _function_of(attribute)
    meta: ToolMeta | None = getattr(function, _TOOL_ATTRIBUTE, None)
    if meta is not None or not callable(function):
        return meta
    snakepit = getattr(function, SNAKEPIT_METADATA_ATTRIBUTE, None)
    if isinstance(snakepit, ToolMetadata):
        return ToolMeta(
            description=snakepit.description,
            supports_streaming=snakepit.supports_streaming,
            required_variables=tuple(snakepit.required_variables),
        )
    return None


@functools.cache
def tool_table(cls: type) -> dict[str, tuple[str, ToolMeta]]:
    """Tool name -> (attribute name, marker) for an adapter class.

    A method stays a tool when a subclass overrides it; the most derived
    marker wins.
    """
    table: dict[str, tuple[str, ToolMeta]] = {}
    by_attribute: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for attribute_name, attribute in vars(klass).items():
            meta = tool_meta(attribute)
            if meta is None:
                continue
            previous = by_attribute.pop(attribute_name, None)
            if previous is not None:
                table.pop(previous, None)
            tool_name = meta.name or attribute_name
            table[tool_name] = (attribute_name, meta)
            by_attribute[attribute_name] = tool_name
    return dict(sorted(table.items()))


# ---------------------------------------------------------------- specs


@dataclass
class ParameterInfo:
    """One parameter of a tool, as the host sees it."""

    name: str
    type: str
    required: bool
    default: Any = None
    description: str = ""


@dataclass
class ToolInfo:
    """One tool of an adapter, as the host sees it."""

    name: str
    description: str
    parameters: list[ParameterInfo]
    supports_streaming: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    signature: str = ""


_NONE_TYPE = type(None)
# X | Y unions exist from Python 3.10, Annotated from 3.9.
_UNION_TYPES: tuple[Any, ...] = (typing.Union, getattr(types, "UnionType", typing.Union))
_ANNOTATED: Any = getattr(typing, "Annotated", object())


def type_label(hint: Any) -> str:
    """The type string of a parameter: int, str, float, bool, list, dict, bytes or any."""
    if hint is inspect.Parameter.empty or hint is Any:
        return "any"
    origin = typing.get_origin(hint)
    if origin is _ANNOTATED:
        return type_label(typing.get_args(hint)[0])
    if origin in _UNION_TYPES:
        labels = {type_label(arg) for arg in typing.get_args(hint) if arg is not _NONE_TYPE}
        if labels == {"int", "float"}:
            return "float"
        return labels.pop() if len(labels) == 1 else "any"
    if origin is not None:
        hint = origin
    if not isinstance(hint, type):
        return "any"
    for base, label in (
        (bool, "bool"),
        (int, "int"),
        (float, "float"),
        (str, "str"),
        ((bytes, bytearray, memoryview), "bytes"),
        (collections.abc.Mapping, "dict"),
        ((list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set), "list"),
    ):
        if issubclass(hint, base):
            return label
    return "any"


def _accepts(hint: Any, value: Any) -> bool | None:
    """Whether ``value`` fits ``hint``; ``None`` when the hint is not checked.

    Only plain builtins are checked (int, float, str, bool, list, dict,
    bytes), alone or in a union, with ``None`` allowed by ``Optional``.
    """
    origin = typing.get_origin(hint)
    if origin in _UNION_TYPES:
        verdicts: list[bool | None] = []
        for arg in typing.get_args(hint):
            if arg is _NONE_TYPE:
                verdicts.append(value is None)
            else:
                verdicts.append(_accepts(arg, value))
        if any(v is None for v in verdicts):
            return None
        return any(verdicts)
    if origin in (list, dict):
        hint = origin
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is list:
        return isinstance(value, list)
    if hint is dict:
        return isinstance(value, dict)
    if hint is bytes:
        return isinstance(value, (bytes, bytearray, memoryview))
    return None


def _hint_text(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def resolved_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """Type hints of ``func`` with string annotations evaluated where possible."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolved forward references
        return dict(getattr(func, "__annotations__", {}))


def signature_text(tool_name: str, func: Callable[..., Any]) -> str:
    """``add(a: float, b: float)``: the tool's call signature for messages."""
    signature = inspect.signature(func)
    hints = resolved_hints(func)
    parts = []
    for parameter in signature.parameters.values():
        hint = hints.get(parameter.name, parameter.annotation)
        text = parameter.name
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            text = "*" + text
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            text = "**" + text
        if hint is not inspect.Parameter.empty:
            text += f": {_hint_text(hint)}"
        if parameter.default is not inspect.Parameter.empty:
            text += f" = {parameter.default!r}" if ":" in text else f"={parameter.default!r}"
        parts.append(text)
    return f"{tool_name}({', '.join(parts)})"


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:\s*$")
_GOOGLE_PARAM = re.compile(r"^(\s+)\*{0,2}(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def parameter_docs(doc: str | None) -> dict[str, str]:
    """Per-parameter descriptions from a Google-style ``Args:`` section or
    Sphinx ``:param name:`` lines."""
    found: dict[str, str] = {}
    if not doc:
        return found
    lines = inspect.cleandoc(doc).splitlines()
    in_section = False
    section_indent: int | None = None
    current: str | None = None
    for line in lines:
        sphinx = _SPHINX_PARAM.match(line)
        if sphinx:
            current = sphinx.group(1)
            found[current] = sphinx.group(2).strip()
            in_section = False
            continue
        if _SECTION.match(line):
            in_section, section_indent, current = True, None, None
            continue
        if not in_section:
            if current and line.startswith((" ", "\t")) and line.strip() and current in found:
                found[current] = (found[current] + " " + line.strip()).strip()
            elif not line.strip():
                current = None
            continue
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_section, current = False, None
            continue
        google = _GOOGLE_PARAM.match(line)
        if google and (section_indent is None or indent == section_indent):
            section_indent = indent
            current = google.group(2)
            found[current] = google.group(4).strip()
        elif current is not None:
            found[current] = (found[current] + " " + line.strip()).strip()
    return found


def summary_of(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    if not doc:
        return ""
    paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines()).strip()


def describe_tool(tool_name: str, method: Callable[..., Any], meta: ToolMeta) -> ToolInfo:
    """The :class:`ToolInfo` of a bound tool method."""
    doc = inspect.getdoc(method)
    docs = parameter_docs(doc)
    hints = resolved_hints(method)
    parameters = []
    for parameter in inspect.signature(method).parameters.values():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        has_default = parameter.default is not inspect.Parameter.empty
        parameters.append(
            ParameterInfo(
                name=parameter.name,
                type=type_label(hints.get(parameter.name, parameter.annotation)),
                required=not has_default,
                default=parameter.default if has_default else None,
                description=docs.get(parameter.name, ""),
            )
        )
    return ToolInfo(
        name=tool_name,
        description=meta.description or summary_of(doc),
        parameters=parameters,
        supports_streaming=meta.supports_streaming,
        metadata=dict(meta.metadata),
        signature=signature_text(tool_name, method),
    )


@dataclass(frozen=True)
class _Binder:
    """What :func:`bind_arguments` needs of one tool's signature, worked out
    once: ``inspect.signature`` and ``typing.get_type_hints`` cost tens of
    microseconds each, more than a short tool call itself."""

    signature: inspect.Signature
    keyword_names: frozenset[str]
    required: tuple[str, ...]
    accepts_any_keyword: bool
    needs_bind: bool
    hints: dict[str, Any]

    @classmethod
    def of(cls, func: Callable[..., Any]) -> _Binder:
        signature = inspect.signature(func)
        parameters = signature.parameters
        keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        keyword_names = frozenset(name for name, p in parameters.items() if p.kind in keyword_kinds)
        return cls(
            signature=signature,
            keyword_names=keyword_names,
            required=tuple(
                name for name, p in parameters.items() if name in keyword_names and p.default is inspect.Parameter.empty
            ),
            accepts_any_keyword=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()),
            # Only positional-only parameters can fail a binding that the
            # name checks above let through.
            needs_bind=any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in parameters.values()),
            hints={name: hint for name, hint in resolved_hints(func).items() if name in parameters},
        )


_BINDERS: weakref.WeakKeyDictionary[Any, _Binder] = weakref.WeakKeyDictionary()
"""Binders of plain functions, by function."""

_METHOD_BINDERS: weakref.WeakKeyDictionary[Any, _Binder] = weakref.WeakKeyDictionary()
"""Binders of bound methods (whose signature drops ``self``), by function."""


def _binder_of(func: Callable[..., Any]) -> _Binder:
    """``func``'s binder, from the cache when ``func`` is a function or a
    method bound to one (anything else, e.g. a ``functools.partial``, is
    worked out each time)."""
    function = getattr(func, "__func__", None)
    cache = _METHOD_BINDERS
    if function is None:
        function, cache = func, _BINDERS
    if not isinstance(function, types.FunctionType):
        return _Binder.of(func)
    binder = cache.get(function)
    if binder is None:
        binder = _Binder.of(func)
        cache[function] = binder
    return binder


def bind_arguments(tool_name: str, func: Callable[..., Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """Checks ``arguments`` against ``func``'s signature before it runs.

    Missing and unknown arguments are found by name (and with
    ``inspect.signature().bind`` when the tool has positional-only
    parameters); values whose hint is a plain builtin (int, float, str,
    bool, list, dict, bytes) are type checked, ints being accepted for
    floats. Raises :class:`InvalidArgumentsError`; returns the arguments
    unchanged. A function's signature and hints are read once, at its
    first call.
    """
    binder = _binder_of(func)

    def fail(message: str, argument: str | None) -> InvalidArgumentsError:
        return InvalidArgumentsError(message, tool_name, argument, signature_text(tool_name, func))

    if not binder.accepts_any_keyword:
        for name in arguments:
            if name not in binder.keyword_names:
                raise fail(f"{tool_name}() got an unexpected argument {name!r}", name)
    for name in binder.required:
        if name not in arguments:
            raise fail(f"{tool_name}() is missing the required argument {name!r}", name)
    if binder.needs_bind:
        try:
            binder.signature.bind(**arguments)
        except TypeError as error:
            raise fail(f"{tool_name}(): {error}", None) from None
    hints = binder.hints
    if hints:
        for name, value in arguments.items():
            hint = hints.get(name)
            if hint is not None and _accepts(hint, value) is False:
                raise fail(
                    f"{tool_name}() argument {name!r} must be {_hint_text(hint)}, "
                    f"got {type(value).__name__} ({_short_repr(value)})",
                    name,
                )
    return arguments


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- async


_NEVER_AWAITABLE = frozenset({type(None), bool, int, float, str, bytes, bytearray, list, dict, tuple})
"""Result types that cannot be awaited: answered without the ABC check."""


def resolve_awaitable(value: Any) -> Any:
    """Runs ``value`` to completion when it is awaitable, else returns it.

    Hooks and tools may be ``async def``; the worker's call threads have no
    event loop, so a fresh one runs the coroutine. Called from inside a
    running loop, the coroutine runs on a helper thread instead.
    """
    if type(value) in _NEVER_AWAITABLE or not inspect.isawaitable(value):
        return value

    async def wait() -> Any:
        return await value

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(wait())
        except BaseException as error:  # noqa: BLE001 - re-raised below
            box["error"] = error

    runner = threading.Thread(target=run, name="snakepit-await")
    runner.start()
    runner.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ---------------------------------------------------------------- adapter


class BaseAdapter:
    """Base class of adapters: tool discovery, dispatch, lifecycle hooks.

    ``__thread_safe__`` is ``False``: the worker refuses to run this adapter
    with ``--max-workers`` (see :class:`ThreadSafeAdapter`).
    """

    __thread_safe__: bool = False

    def __init__(self) -> None:
        self._snakepit_local = threading.local()

    # The context is kept per thread so that one adapter shared by several
    # call threads (--adapter-per-worker with --max-workers) gives each call
    # its own session.
    @property
    def session_context(self) -> SessionContext | None:
        """The :class:`SessionContext` of the call in progress on this thread."""
        return getattr(self._local_state(), "session_context", None)

    @session_context.setter
    def session_context(self, context: SessionContext | None) -> None:
        self._local_state().session_context = context

    def _local_state(self) -> threading.local:
        state: threading.local | None = self.__dict__.get("_snakepit_local")
        if state is None:
            # A subclass whose __init__ skipped super().__init__().
            state = self.__dict__.setdefault("_snakepit_local", threading.local())
        return state

    def set_session_context(self, context: SessionContext | None) -> None:
        """Called by the worker before each call."""
        self.session_context = context

    def initialize(self) -> Any:
        """Hook run before the call (or once, with ``--adapter-per-worker``).

        May be ``async def``.
        """
        return None

    def cleanup(self) -> Any:
        """Hook run after the call, even when it failed (or once at shutdown
        with ``--adapter-per-worker``). May be ``async def``."""
        return None

    def _tool_table(self) -> dict[str, tuple[str, ToolMeta]]:
        # Through a plain ``type``: mypy takes ``type[BaseAdapter]`` for
        # unhashable, which the cache of tool_table would refuse.
        cls: type = type(self)
        return tool_table(cls)

    def tool_names(self) -> list[str]:
        """Sorted names of this adapter's ``@tool`` methods."""
        return list(self._tool_table())

    def describe_tools(self) -> list[ToolInfo]:
        """A :class:`ToolInfo` for each ``@tool`` method, sorted by name: what
        the worker lists to the host (with each tool's signature and defaults)."""
        return [
            describe_tool(tool_name, getattr(self, attribute_name), meta)
            for tool_name, (attribute_name, meta) in self._tool_table().items()
        ]

    def get_tools(self) -> list[DynamicMessage]:
        """The tools as ``ToolRegistration`` protobuf messages, sorted by name
        (Snakepit's form: ``name``, ``description``, ``parameters`` as
        ``ParameterSpec``, ``supports_streaming``, ``metadata``).

        Without protobuf installed, the :class:`ToolInfo` list of
        :meth:`describe_tools`, whose fields have the same names.
        """
        try:
            from .adapter_provider import tool_registration_message
        except ImportError:
            return list(self.describe_tools())
        return [tool_registration_message(info) for info in self.describe_tools()]

    @property
    def session_id(self) -> str | None:
        """The session id of the call in progress on this thread, or ``None``
        (no call, or a call without a session)."""
        context = self.session_context
        session_id = getattr(context, "session_id", None)
        return session_id or None

    def call_tool(self, tool_name: str, /, **kwargs: Any) -> Any:
        """Calls the ``@tool`` method named ``tool_name`` with ``kwargs``.

        What an adapter that overrides :meth:`execute_tool` calls to fall
        through to its tools. An unknown name raises
        :class:`ToolNotFoundError`, an ``AttributeError`` with Snakepit's
        message ``"Tool '<name>' not found in <Class>"`` (the host sees the
        typed tool-not-found error); arguments that do not fit the
        signature raise :class:`InvalidArgumentsError`.
        """
        entry = self._tool_table().get(tool_name)
        if entry is None:
            cls = type(self).__name__
            raise ToolNotFoundError(tool_name, self.tool_names(), cls, message=f"Tool '{tool_name}' not found in {cls}")
        method = getattr(self, entry[0])
        return method(**bind_arguments(tool_name, method, kwargs))

    def _registration_request(self, session_id: str, worker_id: str | None) -> tuple[DynamicMessage, list[str]]:
        from . import protocol

        tools = self.get_tools()
        if worker_id is None:
            context_worker = getattr(self.session_context, "worker_id", "")
            worker_id = context_worker or os.environ.get("SNAKEPIT_WORKER_ID") or f"python-{os.getpid()}"
        request = protocol.RegisterToolsRequest(session_id=session_id, tools=tools, worker_id=worker_id)
        return request, [t.name for t in tools]

    def _registered_names(self, response: Any, names: list[str]) -> list[str]:
        if response.success:
            return list(response.tool_ids) or names
        message = str(response.error_message)
        if "duplicate" in message.lower():
            return names
        log.error("the host refused the tools of %s: %s", type(self).__name__, message)
        return []

    def register_with_session(self, session_id: str, stub: Any, worker_id: str | None = None) -> list[str]:
        """Announces this adapter's tools to the host (``RegisterTools``
        through ``stub``, anything with a ``RegisterTools(request)`` method).

        Returns the names the host registered: on a "duplicate" answer, the
        names anyway; on failure, ``[]`` and a log line (never raises).
        ``worker_id`` defaults to the call's worker, ``SNAKEPIT_WORKER_ID``,
        or ``python-<pid>``.
        """
        try:
            request, names = self._registration_request(session_id, worker_id)
            return self._registered_names(resolve_awaitable(stub.RegisterTools(request)), names)
        except Exception as error:  # noqa: BLE001 - registration failure is logged, not raised
            log.error("registering the tools of %s failed: %s", type(self).__name__, error)
            return []

    async def register_with_session_async(self, session_id: str, stub: Any, worker_id: str | None = None) -> list[str]:
        """:meth:`register_with_session` for ``asyncio`` code: awaits the
        answer of an ``grpc.aio`` stub (a plain stub's answer is used as it is)."""
        try:
            request, names = self._registration_request(session_id, worker_id)
            response = stub.RegisterTools(request)
            if inspect.isawaitable(response):
                response = await response
            return self._registered_names(response, names)
        except Exception as error:  # noqa: BLE001 - registration failure is logged, not raised
            log.error("registering the tools of %s failed: %s", type(self).__name__, error)
            return []

    def find_tool(self, tool_name: str) -> tuple[Callable[..., Any], ToolMeta]:
        """The bound method and marker of a tool; :class:`ToolNotFoundError` if none."""
        entry = self._tool_table().get(tool_name)
        if entry is None:
            raise ToolNotFoundError(tool_name, self.tool_names(), type(self).__name__)
        attribute_name, meta = entry
        return getattr(self, attribute_name), meta

    def execute_tool(self, tool_name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        """Calls a tool with ``arguments`` as keyword arguments.

        Raises :class:`ToolNotFoundError` or :class:`InvalidArgumentsError`
        before running anything. Override to dispatch differently; the
        worker always calls this method.
        """
        method, _meta = self.find_tool(tool_name)
        return method(**bind_arguments(tool_name, method, arguments))
