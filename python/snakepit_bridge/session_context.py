"""What a tool knows about the call it serves: the session and the host.

Sessions live in the worker process: every call of one session that lands
on this process sees the same ``store`` dict. A session is pinned to a
worker only if the host routes it so; the store is not shared between
processes.

The way back to the host is a :class:`~snakepit_bridge.host_client.HostCallbackClient`
(the worker makes one when started with ``--elixir-address``) or, in code
written for Snakepit, any ``BridgeService`` stub. This module imports
neither grpcio nor protobuf until a stub that is not ours is used.
"""

from __future__ import annotations

from typing import Any

DEFAULT_CALLBACK_TIMEOUT_S = 30.0
"""How long :meth:`SessionContext.call_host_tool` waits for the host by default."""


class SessionContext:
    """The session of the call in progress, and a way back to the host.

    Made by the worker for each call; Snakepit code makes its own as
    ``SessionContext(stub, session_id, request_metadata=None)``. Our older
    form ``SessionContext(session_id, store=..., ...)`` still works: a
    string first argument is the session id.

    Attributes:
        session_id: the session id the host sent ("" for none).
        stub: the way to the host: the worker's
            :class:`~snakepit_bridge.host_client.HostCallbackClient`, or any
            gRPC stub of ``BridgeService``; ``None`` without a host.
        store: a dict kept for the session in this process; the same object
            for every call of the session served here.
        worker_id: this worker's id (``--worker-id``).
        metadata: the request's metadata map (``request_metadata`` is the
            same dict).
    """

    def __init__(
        self,
        stub: Any = None,
        session_id: str | None = None,
        request_metadata: dict[str, str] | None = None,
        *,
        store: dict[str, Any] | None = None,
        worker_id: str = "",
        metadata: dict[str, str] | None = None,
        host: Any = None,
        callback_timeout_s: float = DEFAULT_CALLBACK_TIMEOUT_S,
    ) -> None:
        if isinstance(stub, str) and session_id is None:
            stub, session_id = None, stub
        self.session_id: str = session_id or ""
        self.stub: Any = host if host is not None else stub
        self.store: dict[str, Any] = {} if store is None else store
        self.worker_id = worker_id
        self.metadata: dict[str, str] = dict(request_metadata or metadata or {})
        self.callback_timeout_s = callback_timeout_s
        self._elixir_tools: dict[str, dict[str, Any]] | None = None

    @property
    def host(self) -> Any:
        """The way to the host (the same object as :attr:`stub`)."""
        return self.stub

    @property
    def request_metadata(self) -> dict[str, str]:
        """Snakepit's name for :attr:`metadata`."""
        return self.metadata

    def _need_host(self) -> Any:
        if self.stub is None:
            raise RuntimeError("no host callback address: the worker was started without --elixir-address")
        return self.stub

    def call_host_tool(self, tool_name: str, /, **arguments: Any) -> Any:
        """Calls a tool registered on the host (``ExecuteElixirTool``).

        Arguments travel as JSON, except ``bytes``, ``bytearray`` and
        ``memoryview`` ones, which travel as they are (to host tools
        registered with ``host_tool_binary``); a host tool's bytes result
        comes back as ``bytes``. Raises ``ValueError`` for arguments over the
        message limit, and ``RuntimeError`` when the worker was
        started without ``--elixir-address`` or when the host tool failed.
        """
        if self.stub is None:
            raise RuntimeError(
                f"no host tool named `{tool_name}`: the host has no host tools "
                "(the worker was started without --elixir-address)"
            )
        stub = self.stub
        if hasattr(stub, "execute_tool"):
            return stub.execute_tool(self.session_id, tool_name, arguments, self.callback_timeout_s)
        from . import serialization

        request = serialization.host_tool_request(self.session_id, tool_name, arguments)
        response = stub.ExecuteElixirTool(request, timeout=self.callback_timeout_s)
        return serialization.decode_host_tool_response(response, tool_name)

    def call_elixir_tool(self, tool_name: str, /, **arguments: Any) -> Any:
        """Snakepit's name for :meth:`call_host_tool`."""
        return self.call_host_tool(tool_name, **arguments)

    def host_tools(self) -> list[dict[str, Any]]:
        """The tools the host offers (``GetExposedElixirTools``): a list of
        ``{"name", "description", "supports_streaming"}`` dicts.

        Raises ``RuntimeError`` when the worker was started without
        ``--elixir-address``.
        """
        stub = self._need_host()
        if hasattr(stub, "list_tools"):
            tools: list[dict[str, Any]] = stub.list_tools(self.session_id, self.callback_timeout_s)
            return tools
        from . import protocol

        request = protocol.GetExposedElixirToolsRequest(session_id=self.session_id)
        response = stub.GetExposedElixirTools(request, timeout=self.callback_timeout_s)
        return [
            {"name": spec.name, "description": spec.description, "supports_streaming": spec.supports_streaming}
            for spec in response.tools
        ]

    @property
    def elixir_tools(self) -> dict[str, dict[str, Any]]:
        """The host's tools by name (``{"name", "description",
        "supports_streaming"}`` each), asked once and cached until
        :meth:`cleanup`. Raises ``RuntimeError`` without a host."""
        if self._elixir_tools is None:
            self._elixir_tools = {entry["name"]: entry for entry in self.host_tools()}
        return self._elixir_tools

    def cleanup(self) -> None:
        """Forgets the cached host tools. Never raises; calling it again does
        nothing more. (The host ends a session itself; nothing is sent.)"""
        self._elixir_tools = None

    def __enter__(self) -> SessionContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"SessionContext(session_id={self.session_id!r}, worker_id={self.worker_id!r})"
