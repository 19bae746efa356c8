"""What a tool knows about the call it serves: the session and the host.

Sessions live in the worker process: every call of one session that lands
on this process sees the same ``store`` dict. A session is pinned to a
worker only if the host routes it so; the store is not shared between
processes.
"""

from __future__ import annotations

import threading
from typing import Any

from . import serialization

DEFAULT_CALLBACK_TIMEOUT_S = 30.0
"""How long :meth:`SessionContext.call_host_tool` waits for the host by default."""


class HostCallbackClient:
    """Calls the host's ``BridgeService`` (``ExecuteElixirTool``,
    ``GetExposedElixirTools``, ``Ping``).

    ``address`` is ``host:port`` or ``unix:/path``. The channel opens lazily
    and is shared by every call of the process.
    """

    def __init__(self, address: str, max_message_bytes: int | None = None) -> None:
        self.address = address
        self._max_message_bytes = max_message_bytes
        self._lock = threading.Lock()
        self._channel: Any = None

    def _channel_or_open(self) -> Any:
        import grpc

        with self._lock:
            if self._channel is None:
                options = []
                if self._max_message_bytes:
                    options = [
                        ("grpc.max_send_message_length", self._max_message_bytes),
                        ("grpc.max_receive_message_length", self._max_message_bytes),
                    ]
                self._channel = grpc.insecure_channel(self.address, options=options)
            return self._channel

    def _call(self, rpc: str, request: Any, timeout: float | None) -> Any:
        from . import protocol

        method = protocol.METHODS[rpc]
        call = self._channel_or_open().unary_unary(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        return call(request, timeout=timeout)

    def ping(self, message: str = "snakepit worker", timeout: float | None = 1.0) -> str:
        """Pings the host; raises ``grpc.RpcError`` when it does not answer."""
        from . import protocol

        return self._call("Ping", protocol.PingRequest(message=message), timeout).message

    def execute_tool(
        self,
        session_id: str,
        tool_name: str,
        arguments: dict[str, Any],
        timeout: float | None = DEFAULT_CALLBACK_TIMEOUT_S,
    ) -> Any:
        """Runs a host tool and returns its decoded result.

        Raises ``RuntimeError`` with the host's error message when the tool
        failed.
        """
        from . import protocol

        request = protocol.ExecuteElixirToolRequest(session_id=session_id, tool_name=tool_name)
        for name, value in arguments.items():
            request.parameters[name].CopyFrom(serialization.parameter_any(value))
        response = self._call("ExecuteElixirTool", request, timeout)
        if not response.success:
            raise RuntimeError(response.error_message or f"host tool {tool_name!r} failed")
        if response.binary_result:
            return bytes(response.binary_result)
        if not response.HasField("result"):
            return None
        return serialization.decode_any(response.result)

    def list_tools(
        self, session_id: str = "", timeout: float | None = DEFAULT_CALLBACK_TIMEOUT_S
    ) -> list[dict[str, Any]]:
        """The host's tools (``GetExposedElixirTools``), as
        ``{"name", "description", "supports_streaming"}`` dicts in the host's order."""
        from . import protocol

        response = self._call(
            "GetExposedElixirTools", protocol.GetExposedElixirToolsRequest(session_id=session_id), timeout
        )
        return [
            {"name": spec.name, "description": spec.description, "supports_streaming": spec.supports_streaming}
            for spec in response.tools
        ]

    def close(self) -> None:
        """Closes the channel, if it was opened."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None


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

        Arguments travel as JSON. Raises ``RuntimeError`` when the worker was
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
