"""The worker's command line (see :mod:`snakepit_bridge.worker` for the contract)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024
"""Default for ``--max-message-bytes``."""


@dataclass(frozen=True)
class WorkerOptions:
    """The worker's flags, parsed."""

    adapter: str
    """``--adapter``: the adapter class, as ``module.Class``."""
    port: int = 0
    """``--port``: the TCP port to listen on (0: any free port)."""
    socket: str | None = None
    """``--socket``: listen on this Unix socket instead of TCP."""
    bind_host: str = "127.0.0.1"
    """``--bind-host``: the TCP interface to bind."""
    elixir_address: str | None = None
    """``--elixir-address``: the host's callback server, waited for before binding."""
    max_workers: int | None = None
    """``--max-workers``: the thread profile's calls at once; None for the process profile."""
    thread_safety_check: bool = False
    """``--thread-safety-check``: accepted for Snakepit compatibility."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """``--max-message-bytes``: the largest gRPC message sent or received."""
    worker_id: str | None = None
    """``--worker-id``: the name used in logs and response metadata."""
    adapter_per_worker: bool = False
    """``--adapter-per-worker``: one adapter for the process instead of one per call."""
    pool_token: str | None = None
    """Not a flag: the pool's secret, from ``SNAKEPIT_POOL_TOKEN`` (see :mod:`snakepit_bridge.pool_token`)."""
    transport: str = "grpc"
    """``--transport``: ``grpc`` (the Snakepit wire) or ``socket`` (length-prefixed
    frames on ``--socket``; see :mod:`snakepit_bridge.socket_server`)."""
    unknown: list[str] = field(default_factory=list)
    """Flags we do not know (Snakepit hosts add their own), to be logged."""

    @property
    def thread_profile(self) -> bool:
        """Whether several tool calls may run at once (``--max-workers``)."""
        return self.max_workers is not None


def parse_args(argv: list[str] | None = None) -> WorkerOptions:
    """Parses the worker's command line; exits 2 with usage on a bad flag."""
    parser = argparse.ArgumentParser(
        prog="grpc_server.py",
        description="snakepit Python worker: serves an adapter's tools over gRPC.",
        allow_abbrev=False,
    )
    parser.add_argument("--adapter", required=True, help="adapter class, as module.Class")
    parser.add_argument("--port", type=int, default=0, help="TCP port to listen on (0: any free port)")
    parser.add_argument("--socket", default=None, help="listen on the Unix socket PATH instead of TCP")
    parser.add_argument("--bind-host", default="127.0.0.1", help="TCP interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--elixir-address",
        default=None,
        help="the host's callback server (HOST:PORT or unix:PATH); waited for before binding",
    )
    parser.add_argument(
        "--max-workers",
        type=int,
        default=None,
        help="thread profile: run up to N calls at once (the adapter must be thread-safe)",
    )
    parser.add_argument("--thread-safety-check", action="store_true", help="accepted for Snakepit compatibility")
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest gRPC message sent or received (default 128 MiB)",
    )
    parser.add_argument("--worker-id", default=None, help="name used in logs and response metadata")
    parser.add_argument(
        "--adapter-per-worker",
        action="store_true",
        help="one adapter for the whole process (initialized once) instead of one per call",
    )
    parser.add_argument(
        "--transport",
        choices=("grpc", "socket"),
        default="grpc",
        help="grpc (default) or socket: length-prefixed frames on --socket, no gRPC server",
    )
    # Unknown flags are tolerated: Snakepit hosts add their own
    # (--snakepit-run-id, --snakepit-instance-name, ...).
    args, unknown = parser.parse_known_args(argv)
    if args.max_workers is not None and args.max_workers < 1:
        parser.error("--max-workers must be at least 1")
    if args.max_message_bytes < 1:
        parser.error("--max-message-bytes must be positive")
    if args.transport == "socket" and not args.socket:
        parser.error("--transport socket needs --socket PATH")
    return WorkerOptions(
        adapter=args.adapter,
        port=args.port,
        socket=args.socket,
        bind_host=args.bind_host,
        elixir_address=args.elixir_address,
        max_workers=args.max_workers,
        thread_safety_check=args.thread_safety_check,
        max_message_bytes=args.max_message_bytes,
        worker_id=args.worker_id,
        adapter_per_worker=args.adapter_per_worker,
        transport=args.transport,
        unknown=unknown,
    )
