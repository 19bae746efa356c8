#!/usr/bin/env python3
"""Test data: a small worker that follows the Snakepit worker contract.

It stands in for Snakepit's own worker script in tests/host_tools.rs, and
does what that contract asks of a worker, in order: wait for the host's
Ping at --elixir-address, listen on 127.0.0.1:<--port>, register its tools
with the host (RegisterTools), report the port through SNAKEPIT_READY_FILE
(written to <file>.tmp, then renamed), and open a session on the host
(InitializeSession) before each call. Like Snakepit's worker, it sends a
host tool's string arguments as packed google.protobuf.StringValue messages
and its numbers as JSON under the type_url google.protobuf.Value.

Message classes come from snakepit_bridge.protocol (python/ on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time
from typing import Any

import grpc
from google.protobuf import wrappers_pb2
from snakepit_bridge import protocol

WORKER_ID = os.environ.get("SNAKEPIT_WORKER_ID", f"pid-{os.getpid()}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--elixir-address", required=True)
    parser.add_argument("--max-workers", type=int, default=None)
    args, _unknown = parser.parse_known_args()
    return args


class Host:
    """The host's callback service."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)

    def call(self, rpc: str, request: Any, timeout: float = 10.0) -> Any:
        method = protocol.METHODS[rpc]
        stub = self.channel.unary_unary(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        return stub(request, timeout=timeout)

    def wait_for_ping(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.call("Ping", protocol.PingRequest(message=WORKER_ID), timeout=1.0)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def snakepit_style_any(value: Any) -> Any:
    """A callback parameter the way Snakepit's worker sends it."""
    if isinstance(value, str):
        packed = wrappers_pb2.StringValue(value=value).SerializeToString()
        return protocol.Any(type_url="type.googleapis.com/google.protobuf.StringValue", value=packed)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return protocol.Any(type_url="type.googleapis.com/google.protobuf.Value", value=json.dumps(value).encode())
    return protocol.Any(type_url="type.googleapis.com/google.protobuf.StringValue", value=json.dumps(value).encode())


def result_any(value: Any) -> Any:
    kind = {dict: "map", list: "list", str: "string", float: "float", bool: "boolean", int: "integer"}
    name = "null" if value is None else kind.get(type(value), "string")
    return protocol.Any(type_url=f"type.googleapis.com/snakepit.{name}", value=json.dumps(value).encode())


class ContractServicer:
    TOOLS = {
        "add": "Adds a and b",
        "whoami": "The flags and environment this worker was started with",
        "call_host": "Calls a host tool with Snakepit's argument encoding",
    }

    def __init__(self, host: Host, args: argparse.Namespace) -> None:
        self.host = host
        self.args = args

    def Ping(self, request: Any, context: Any) -> Any:
        return protocol.PingResponse(message=f"pong: {request.message}")

    def ExecuteTool(self, request: Any, context: Any) -> Any:
        session_id = request.session_id or f"{WORKER_ID}-default"
        opened = self.host.call("InitializeSession", protocol.InitializeSessionRequest(session_id=session_id))
        if not opened.success:
            return protocol.ExecuteToolResponse(success=False, error_message=opened.error_message)
        arguments = {name: json.loads(any_.value) for name, any_ in request.parameters.items()}
        try:
            result = self.run(request.tool_name, arguments)
        except Exception as error:  # noqa: BLE001 - reported to the host
            payload = {"type": type(error).__name__, "message": str(error), "traceback": ""}
            return protocol.ExecuteToolResponse(success=False, error_message=json.dumps(payload))
        return protocol.ExecuteToolResponse(success=True, result=result_any(result))

    def run(self, tool: str, arguments: dict[str, Any]) -> Any:
        if tool == "add":
            return arguments["a"] + arguments["b"]
        if tool == "whoami":
            return {
                "worker_id": WORKER_ID,
                "adapter": self.args.adapter,
                "port": self.args.port,
                "elixir_address": self.args.elixir_address,
                "max_workers": self.args.max_workers,
                "argv": sys.argv[1:],
            }
        if tool == "call_host":
            request = protocol.ExecuteElixirToolRequest(session_id=f"{WORKER_ID}-default", tool_name=arguments["name"])
            for name, value in (arguments.get("arguments") or {}).items():
                request.parameters[name].CopyFrom(snakepit_style_any(value))
            response = self.host.call("ExecuteElixirTool", request)
            if not response.success:
                raise RuntimeError(response.error_message)
            return json.loads(response.result.value) if response.result.value else None
        raise KeyError(f"no tool {tool}")

    def handler(self) -> Any:
        handlers = {}
        for rpc in ("Ping", "ExecuteTool"):
            method = protocol.METHODS[rpc]
            handlers[rpc] = grpc.unary_unary_rpc_method_handler(
                getattr(self, rpc),
                request_deserializer=method.request.FromString,
                response_serializer=method.response.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(protocol.SERVICE_NAME, handlers)


def main() -> None:
    args = parse_args()
    host = Host(args.elixir_address)
    host.wait_for_ping()

    servicer = ContractServicer(host, args)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor((args.max_workers or 1) + 3))
    server.add_generic_rpc_handlers([servicer.handler()])
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()

    registration = protocol.RegisterToolsRequest(worker_id=WORKER_ID)
    for name, description in ContractServicer.TOOLS.items():
        registration.tools.add(name=name, description=description)
    if not host.call("RegisterTools", registration).success:
        sys.exit("the host refused the tool registration")

    ready_file = os.environ["SNAKEPIT_READY_FILE"]
    with open(f"{ready_file}.tmp", "w", encoding="utf-8") as handle:
        handle.write(str(port))
    os.replace(f"{ready_file}.tmp", ready_file)

    server.wait_for_termination()


if __name__ == "__main__":
    main()
