"""The worker's client of the host's callback server (``--elixir-address``).

Tools reach it through :class:`~snakepit_bridge.session_context.SessionContext`
(``call_host_tool``, ``host_tools``); start-up pings it before binding.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc

from . import pool_token, protocol, serialization
from .protocol import DynamicMessage
from .session_context import DEFAULT_CALLBACK_TIMEOUT_S

log = logging.getLogger("snakepit.worker")


class HostCallbackClient:
    """Calls the host's ``BridgeService`` (``ExecuteElixirTool``,
    ``GetExposedElixirTools``, ``Ping``).

    ``address`` is ``host:port`` or ``unix:/path``. The channel opens lazily
    and is shared by every call of the process. ``token``, the pool's secret
    (:mod:`snakepit_bridge.pool_token`), goes with every call.
    """

    def __init__(self, address: str, max_message_bytes: int | None = None, token: str | None = None) -> None:
        self.address = address
        self._metadata = pool_token.call_metadata(token)
        self._max_message_bytes = max_message_bytes
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None

    def _channel_or_open(self) -> grpc.Channel:
        with self._lock:
            if self._channel is None:
                options: list[tuple[str, Any]] = []
                if self._max_message_bytes:
                    options = [
                        ("grpc.max_send_message_length", self._max_message_bytes),
                        ("grpc.max_receive_message_length", self._max_message_bytes),
                    ]
                self._channel = grpc.insecure_channel(self.address, options=options)
            return self._channel

    def _call(self, rpc: str, request: DynamicMessage, timeout: float | None) -> DynamicMessage:
        method = protocol.METHODS[rpc]
        call = self._channel_or_open().unary_unary(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        return call(request, timeout=timeout, metadata=self._metadata)

    def ping(self, message: str = "snakepit worker", timeout: float | None = 1.0) -> str:
        """Pings the host; raises ``grpc.RpcError`` when it does not answer."""
        response = self._call("Ping", protocol.PingRequest(message=message), timeout)
        answer: str = response.message
        return answer

    def wait_until_answering(self, timeout_s: float) -> bool:
        """Pings the host until it answers or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            remaining = deadline - time.monotonic()
            try:
                self.ping(timeout=max(0.1, min(1.0, remaining)))
                return True
            except grpc.RpcError as error:
                if time.monotonic() + delay >= deadline:
                    log.error("host at %s did not answer Ping: %s", self.address, error)
                    return False
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def execute_tool(
        self,
        session_id: str,
        tool_name: str,
        arguments: dict[str, Any],
        timeout: float | None = DEFAULT_CALLBACK_TIMEOUT_S,
    ) -> Any:
        """Runs a host tool and returns its decoded result: ``bytes`` when the
        host tool returned bytes.

        ``bytes``, ``bytearray`` and ``memoryview`` arguments travel as they
        are (``binary_parameters``, for host tools registered with
        ``host_tool_binary``); the others as JSON. Raises ``ValueError``
        before sending when the request is over the message limit, and
        ``RuntimeError`` with the host's error message when the tool failed.
        """
        request = serialization.host_tool_request(session_id, tool_name, arguments)
        if self._max_message_bytes and (size := request.ByteSize()) > self._max_message_bytes:
            raise ValueError(
                f"host tool {tool_name!r}: the arguments are {size} bytes, over the message limit of "
                f"{self._max_message_bytes} bytes (max_message_bytes)"
            )
        response = self._call("ExecuteElixirTool", request, timeout)
        return serialization.decode_host_tool_response(response, tool_name)

    def list_tools(
        self, session_id: str = "", timeout: float | None = DEFAULT_CALLBACK_TIMEOUT_S
    ) -> list[dict[str, Any]]:
        """The host's tools (``GetExposedElixirTools``), as
        ``{"name", "description", "supports_streaming"}`` dicts in the host's order."""
        response = self._call(
            "GetExposedElixirTools", protocol.GetExposedElixirToolsRequest(session_id=session_id), timeout
        )
        return [
            {"name": spec.name, "description": spec.description, "supports_streaming": spec.supports_streaming}
            for spec in response.tools
        ]

    # The stub face: Snakepit code hands a ``BridgeService`` stub to
    # ``register_with_session`` and ``SessionContext``; this client is one.

    def RegisterTools(self, request: DynamicMessage, timeout: float | None = None) -> DynamicMessage:
        """``RegisterTools``, as a ``BridgeService`` stub has it."""
        return self._call("RegisterTools", request, timeout)

    def GetExposedElixirTools(self, request: DynamicMessage, timeout: float | None = None) -> DynamicMessage:
        """``GetExposedElixirTools``, as a ``BridgeService`` stub has it."""
        return self._call("GetExposedElixirTools", request, timeout)

    def ExecuteElixirTool(self, request: DynamicMessage, timeout: float | None = None) -> DynamicMessage:
        """``ExecuteElixirTool``, as a ``BridgeService`` stub has it."""
        return self._call("ExecuteElixirTool", request, timeout)

    def Ping(self, request: DynamicMessage, timeout: float | None = None) -> DynamicMessage:
        """``Ping``, as a ``BridgeService`` stub has it."""
        return self._call("Ping", request, timeout)

    def close(self) -> None:
        """Closes the channel, if it was opened."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
