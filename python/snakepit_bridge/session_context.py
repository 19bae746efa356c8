"""What a tool knows about the call it serves: the session and the host.

Sessions live in the worker process: every call of one session that lands
on this process sees the same ``store`` dict. A session is pinned to a
worker only if the host routes it so; the store is not shared between
processes.

The way back to the host is a :class:`~snakepit_bridge.host_client.HostCallbackClient`
(the worker makes one when started with ``--elixir-address``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only a type here: importing it would need grpcio, and this module is
    # part of what adapters import without it.
    from .host_client import HostCallbackClient

DEFAULT_CALLBACK_TIMEOUT_S = 30.0
"""How long :meth:`SessionContext.call_host_tool` waits for the host by default."""


class SessionContext:
    """The session of the call in progress, and a way back to the host.

    Attributes:
        session_id: the session id the host sent ("" for none).
        store: a dict kept for the session in this process; the same object
            for every call of the session served here.
        worker_id: this worker's id (``--worker-id``).
        metadata: the request's metadata map.
    """

    def __init__(
        self,
        session_id: str,
        store: dict[str, Any] | None = None,
        worker_id: str = "",
        metadata: dict[str, str] | None = None,
        host: HostCallbackClient | None = None,
        callback_timeout_s: float = DEFAULT_CALLBACK_TIMEOUT_S,
    ) -> None:
        self.session_id = session_id
        self.store: dict[str, Any] = {} if store is None else store
        self.worker_id = worker_id
        self.metadata: dict[str, str] = dict(metadata or {})
        self.host = host
        self.callback_timeout_s = callback_timeout_s

    def call_host_tool(self, tool_name: str, /, **arguments: Any) -> Any:
        """Calls a tool registered on the host (``ExecuteElixirTool``).

        Arguments travel as JSON, except ``bytes``, ``bytearray`` and
        ``memoryview`` ones, which travel as they are (to host tools
        registered with ``host_tool_binary``); a host tool's bytes result
        comes back as ``bytes``. Raises ``ValueError`` for arguments over the
        message limit, and ``RuntimeError`` when the worker was
        started without ``--elixir-address`` or when the host tool failed.
        """
        if self.host is None:
            raise RuntimeError("no host callback address: the worker was started without --elixir-address")
        return self.host.execute_tool(self.session_id, tool_name, arguments, self.callback_timeout_s)

    def call_elixir_tool(self, tool_name: str, /, **arguments: Any) -> Any:
        """Snakepit's name for :meth:`call_host_tool`."""
        return self.call_host_tool(tool_name, **arguments)

    def host_tools(self) -> list[dict[str, Any]]:
        """The tools the host offers (``GetExposedElixirTools``): a list of
        ``{"name", "description", "supports_streaming"}`` dicts.

        Raises ``RuntimeError`` when the worker was started without
        ``--elixir-address``.
        """
        if self.host is None:
            raise RuntimeError("no host callback address: the worker was started without --elixir-address")
        return self.host.list_tools(self.session_id, self.callback_timeout_s)

    def __repr__(self) -> str:
        return f"SessionContext(session_id={self.session_id!r}, worker_id={self.worker_id!r})"
