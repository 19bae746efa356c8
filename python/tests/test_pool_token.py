"""The pool's token on the worker's side: a worker given one serves only
callers that present it, over TCP too, and presents it to the host."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any, Callable

import grpc
import pytest
from conftest import SHOWCASE, RunningWorker, tool_request, wait_until

from snakepit_bridge import pool_token, protocol, serialization

StartWorker = Callable[..., RunningWorker]
TOKEN = "0123456789abcdef" * 4


def call(worker: RunningWorker, rpc: str, request: Any, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    method = protocol.METHODS[rpc]
    stub = worker.channel.unary_unary(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    return stub(request, timeout=10, metadata=metadata)


def refused(error: pytest.ExceptionInfo[grpc.RpcError]) -> bool:
    return error.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("tcp", [False, True])
def test_a_worker_with_a_token_serves_only_callers_that_present_it(start_worker: StartWorker, tcp: bool) -> None:
    worker = start_worker(SHOWCASE, env={pool_token.ENV_VAR: TOKEN}, tcp=tcp)
    with pytest.raises(grpc.RpcError) as error:
        call(worker, "Ping", protocol.PingRequest(message="outsider"))
    assert refused(error)
    with pytest.raises(grpc.RpcError) as error:
        call(worker, "ExecuteTool", tool_request("ping"), ((pool_token.HEADER, TOKEN[::-1]),))
    assert refused(error)
    method = protocol.METHODS["ExecuteStreamingTool"]
    stream = worker.channel.unary_stream(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    with pytest.raises(grpc.RpcError) as error:
        list(stream(tool_request("count_stream", n=2), timeout=10))
    assert refused(error)

    good = ((pool_token.HEADER, TOKEN),)
    response = call(worker, "ExecuteTool", tool_request("ping"), good)
    assert response.success and serialization.decode_any(response.result) == "pong"
    chunks = list(stream(tool_request("count_stream", n=2), timeout=10, metadata=good))
    assert len([c for c in chunks if c.data]) == 2


def test_a_worker_without_a_token_serves_anyone_as_snakepit_hosts_expect(start_worker: StartWorker) -> None:
    worker = start_worker(SHOWCASE)
    assert call(worker, "Ping", protocol.PingRequest(message="snakepit host")).message


def test_the_token_is_presented_to_the_host_and_hidden_from_tools(start_worker: StartWorker, short_dir: Path) -> None:
    seen: list[tuple[str, tuple[tuple[str, Any], ...]]] = []

    def answer(rpc: str, response: Any) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(_request: Any, context: grpc.ServicerContext) -> Any:
            seen.append((rpc, tuple(context.invocation_metadata())))
            return response

        return handle

    handlers = {
        "Ping": grpc.unary_unary_rpc_method_handler(
            answer("Ping", protocol.PingResponse(message="host")),
            request_deserializer=protocol.PingRequest.FromString,
            response_serializer=protocol.PingResponse.SerializeToString,
        ),
        "ExecuteElixirTool": grpc.unary_unary_rpc_method_handler(
            answer("ExecuteElixirTool", protocol.ExecuteElixirToolResponse(success=True)),
            request_deserializer=protocol.ExecuteElixirToolRequest.FromString,
            response_serializer=protocol.ExecuteElixirToolResponse.SerializeToString,
        ),
    }
    host = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    host.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(protocol.SERVICE_NAME, handlers)])
    address = f"unix:{short_dir / 'host.sock'}"
    host.add_insecure_port(address)
    host.start()
    try:
        worker = start_worker(SHOWCASE, "--elixir-address", address, env={pool_token.ENV_VAR: TOKEN})
        good = ((pool_token.HEADER, TOKEN),)
        response = call(worker, "ExecuteTool", tool_request("call_host", name="anything"), good)
        assert response.success, response.error_message
        assert [rpc for rpc, _ in seen][-1] == "ExecuteElixirTool"
        for rpc, metadata in seen:
            assert (pool_token.HEADER, TOKEN) in metadata, rpc
        # A tool's children do not inherit the secret.
        response = call(worker, "ExecuteTool", tool_request("spawn_child", seconds=30), good)
        child = serialization.decode_any(response.result)

        # Right after the spawn returns, the child may still be inside exec
        # (vfork lets the parent run on first): wait for its environment.
        def environ() -> list[bytes]:
            return Path(f"/proc/{child}/environ").read_bytes().split(b"\0")

        wait_until(lambda: any(e.startswith(b"SNAKEPIT_READY_FILE=") for e in environ()), 10, "the child's environment")
        assert not any(entry.startswith(pool_token.ENV_VAR.encode()) for entry in environ())
    finally:
        host.stop(0).wait(5)


def test_presented_compares_the_whole_value() -> None:
    assert pool_token.presented(((pool_token.HEADER, TOKEN),), TOKEN)
    assert pool_token.presented((("other", "x"), (pool_token.HEADER, TOKEN.encode())), TOKEN)
    assert not pool_token.presented(((pool_token.HEADER, TOKEN[:-1]),), TOKEN)
    assert not pool_token.presented((("x-other", TOKEN),), TOKEN)
    assert not pool_token.presented(None, TOKEN)
    assert pool_token.call_metadata(None) == ()
