"""The ``serve`` mode: a long-lived worker that a remote host connects to.

Command line (the flag names are a public contract)::

    snakepit-worker serve --adapter pkg.Class
        [--listen HOST:PORT]            (default 0.0.0.0:50051; port 0: any free port)
        [--threads N]                   (thread profile: N calls at once; default: process profile)
        [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]   (TLS; the CA makes it mTLS)
        [--insecure-plaintext]          (listen without TLS: required when there is no --tls-cert)
        [--token-file PATH]             (every call must carry ``authorization: Bearer <token>``)
        [--health-listen HOST:PORT]     (grpc.health.v1, plaintext; default 0.0.0.0:8081)
        [--grace SECONDS]               (default 30)
        [--max-message-bytes N] [--python-path DIR ...] [--worker-id ID] [--adapter-per-worker]

or ``python3 -m snakepit_bridge serve ...``.

Unlike the local worker (:mod:`snakepit_bridge.worker`) it waits for no
host callback server and does not end with a parent or on EOF on stdin:
Kubernetes (or whoever started it) owns its life. Once both servers are
bound and the adapter is imported it prints exactly one line to stdout,
:data:`READY_PREFIX` ``listen=<host>:<port> health=<host>:<port>`` with the
bound ports; everything else goes to stderr.

Exit statuses: 0 after SIGTERM/SIGINT (also when the grace ran out), 2 for
a bad command line (including plaintext without ``--insecure-plaintext``
and an unreadable token or TLS file), 3 when the adapter cannot be
imported, 4 when grpcio, protobuf or grpcio-health-checking are missing, 6
when an address cannot be bound, and :data:`EXIT_DEADLINE` when a call in
the process profile outlives its deadline.

This module imports nothing of grpc: :mod:`snakepit_bridge.remote_server`
does, imported once the flags are checked.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import NoReturn

from .command_line import DEFAULT_MAX_MESSAGE_BYTES

READY_PREFIX = "SNAKEPIT_SERVE_READY"
"""The first word of the ready line printed to stdout."""

DRAINING_MESSAGE = "snakepit: draining"
"""The start of the ``UNAVAILABLE`` message of calls refused while draining."""

UNAUTHENTICATED_MESSAGE = "missing or wrong bearer token"
"""The ``UNAUTHENTICATED`` message of calls without the right token."""

EXIT_USAGE = 2
"""Exit status for a bad command line (as argparse's)."""

EXIT_DEADLINE = 70
"""Exit status when a process-profile call ran past its deadline (EX_SOFTWARE)."""

DEFAULT_LISTEN = "0.0.0.0:50051"
"""Default for ``--listen``."""

DEFAULT_HEALTH_LISTEN = "0.0.0.0:8081"
"""Default for ``--health-listen``."""

DEFAULT_GRACE_S = 30.0
"""Default for ``--grace``."""


@dataclass(frozen=True)
class ServeOptions:
    """The ``serve`` mode's flags, parsed and checked."""

    adapter: str
    """``--adapter``: the adapter class, as ``module.Class``."""
    listen_host: str = "0.0.0.0"
    """The host part of ``--listen``."""
    listen_port: int = 50051
    """The port of ``--listen`` (0: any free port)."""
    threads: int | None = None
    """``--threads``: the thread profile's calls at once; None for the process profile."""
    tls_cert: str | None = None
    """``--tls-cert``: the server certificate chain (PEM file)."""
    tls_key: str | None = None
    """``--tls-key``: the server's private key (PEM file)."""
    tls_client_ca: str | None = None
    """``--tls-client-ca``: when set, clients must present a certificate signed by this CA."""
    token_file: str | None = None
    """``--token-file``: the file holding the bearer token every call must carry."""
    health_host: str = "0.0.0.0"
    """The host part of ``--health-listen``."""
    health_port: int = 8081
    """The port of ``--health-listen`` (0: any free port)."""
    grace_s: float = DEFAULT_GRACE_S
    """``--grace``: how long SIGTERM waits for calls in flight."""
    insecure_plaintext: bool = False
    """``--insecure-plaintext``: listen without TLS."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """``--max-message-bytes``: the largest gRPC message sent or received."""
    python_path: list[str] = field(default_factory=list)
    """``--python-path``: directories put first on ``sys.path``, in the order given."""
    worker_id: str = ""
    """``--worker-id``: the name in logs and response metadata (default: the host name, a pod's name)."""
    adapter_per_worker: bool = False
    """``--adapter-per-worker``: one adapter for the process (a model loaded once) instead of one per call."""

    @property
    def thread_profile(self) -> bool:
        """Whether several tool calls may run at once (``--threads``)."""
        return self.threads is not None

    @property
    def capacity(self) -> int:
        """How many calls run at once: what ``Ping`` reports."""
        return self.threads if self.threads is not None else 1


class Drain:
    """SIGTERM/SIGINT and the calls in flight, for a graceful end.

    Before :meth:`serving` a signal ends the process at once. Afterwards it
    only marks the drain as requested: from then on :meth:`enter` refuses
    new calls, and the main thread, polling in :meth:`wait_requested`,
    closes the drain and waits for the calls that had entered
    (:meth:`wait_idle`). The signal handler sets a plain attribute and takes
    no lock: a handler that waits for a lock the interrupted main thread
    holds would deadlock.
    """

    POLL_S = 0.05
    """How often the main thread looks at the request flag."""

    def __init__(self) -> None:
        self._serving = False
        self._requested = False
        self._closed = False
        self._in_flight = 0
        self._idle = threading.Condition()

    def install_signal_handlers(self) -> None:
        """Makes SIGTERM and SIGINT handled by this object."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def serving(self) -> None:
        """From now on a signal asks for a drain instead of ending the process."""
        self._serving = True

    def request(self) -> None:
        """Asks for a drain (what SIGTERM does once serving)."""
        self._requested = True

    @property
    def requested(self) -> bool:
        """Whether a drain was asked for."""
        return self._requested

    def wait_requested(self) -> None:
        """Blocks the main thread until a drain is asked for."""
        while not self._requested:
            time.sleep(self.POLL_S)

    def enter(self) -> bool:
        """Counts a new call in; False (the call must be refused) when draining."""
        with self._idle:
            if self._requested or self._closed:
                return False
            self._in_flight += 1
            return True

    def leave(self) -> None:
        """Counts a call that :meth:`enter` let in out again."""
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    @property
    def in_flight(self) -> int:
        """The calls running now."""
        with self._idle:
            return self._in_flight

    def close(self) -> None:
        """Refuses every call from now on (also ones that raced the signal)."""
        with self._idle:
            self._requested = True
            self._closed = True

    def wait_idle(self, timeout_s: float) -> bool:
        """Waits until no call is in flight, at most ``timeout_s``; whether none is."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout_s)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._serving:
            self._requested = True
            return
        from .lifetime import signal_own_group

        signal_own_group(signal.SIGTERM)
        os._exit(0)


def split_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as (host, port); ValueError when malformed."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_serve_args(argv: list[str] | None = None) -> ServeOptions:
    """Parses and checks the ``serve`` command line; exits 2 with a message on a bad one."""
    parser = argparse.ArgumentParser(
        prog="snakepit-worker serve",
        description="Serve an adapter's tools to remote snakepit hosts over gRPC (TLS, bearer token), "
        "with a grpc.health.v1 endpoint for probes.",
        allow_abbrev=False,
    )
    parser.add_argument("--adapter", required=True, help="adapter class, as module.Class")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN})")
    parser.add_argument("--threads", type=int, default=None, help="thread profile: run up to N calls at once")
    parser.add_argument("--tls-cert", default=None, help="server certificate chain (PEM)")
    parser.add_argument("--tls-key", default=None, help="server private key (PEM)")
    parser.add_argument("--tls-client-ca", default=None, help="require client certificates signed by this CA (PEM)")
    parser.add_argument("--token-file", default=None, help="file holding the bearer token every call must carry")
    parser.add_argument(
        "--health-listen",
        default=DEFAULT_HEALTH_LISTEN,
        help=f"HOST:PORT of the plaintext grpc.health.v1 server (default {DEFAULT_HEALTH_LISTEN})",
    )
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, help="seconds SIGTERM waits for calls")
    parser.add_argument("--insecure-plaintext", action="store_true", help="listen without TLS (needs no --tls-cert)")
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest gRPC message sent or received (default 128 MiB)",
    )
    parser.add_argument(
        "--python-path", action="append", default=[], metavar="DIR", help="put DIR first on sys.path (repeatable)"
    )
    parser.add_argument("--worker-id", default=None, help="name in logs and response metadata (default: host name)")
    parser.add_argument(
        "--adapter-per-worker",
        action="store_true",
        help="one adapter for the whole process (initialized once) instead of one per call",
    )
    args = parser.parse_args(argv)
    try:
        listen_host, listen_port = split_address(args.listen)
        health_host, health_port = split_address(args.health_listen)
    except ValueError as error:
        parser.error(str(error))
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.max_message_bytes < 1:
        parser.error("--max-message-bytes must be positive")
    if args.grace < 0:
        parser.error("--grace must not be negative")
    if args.tls_cert and args.insecure_plaintext:
        parser.error("--insecure-plaintext and --tls-cert contradict each other: choose one")
    if not args.tls_cert and not args.insecure_plaintext:
        parser.error(
            "refusing to listen without TLS: give --tls-cert and --tls-key "
            "(and --tls-client-ca for client certificates), or --insecure-plaintext to serve in plaintext"
        )
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    for flag, path in (
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
        ("--tls-client-ca", args.tls_client_ca),
        ("--token-file", args.token_file),
    ):
        if path and not os.access(path, os.R_OK):
            parser.error(f"{flag}: cannot read {path}")
    return ServeOptions(
        adapter=args.adapter,
        listen_host=listen_host,
        listen_port=listen_port,
        threads=args.threads,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        token_file=args.token_file,
        health_host=health_host,
        health_port=health_port,
        grace_s=args.grace,
        insecure_plaintext=args.insecure_plaintext,
        max_message_bytes=args.max_message_bytes,
        python_path=list(args.python_path),
        worker_id=args.worker_id or socket.gethostname(),
        adapter_per_worker=args.adapter_per_worker,
    )


def main(argv: list[str] | None = None) -> NoReturn:
    """Runs ``serve`` until SIGTERM or SIGINT (then drains and exits 0). Never returns."""
    from .lifetime import EXIT_DEPENDENCIES, exit_with, route_stdout_to_stderr
    from .logging_config import configure_logging
    from .worker import import_adapter, require_thread_safe

    options = parse_serve_args(sys.argv[1:] if argv is None else argv)
    # The ready line goes to the real stdout; anything a tool prints, to stderr.
    ready_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    route_stdout_to_stderr()
    configure_logging(force=True, worker_id=options.worker_id)
    for directory in reversed(options.python_path):
        sys.path.insert(0, os.path.abspath(directory))

    # Signals are caught from here on: before the servers run, one ends the process.
    drain = Drain()
    drain.install_signal_handlers()
    try:
        from . import remote_server  # noqa: F401 - grpcio, protobuf and grpc_health
        from .remote_server import serve
    except Exception as error:  # noqa: BLE001 - ImportError or a too old protobuf
        exit_with(
            EXIT_DEPENDENCIES,
            f"snakepit worker: cannot import grpcio/protobuf/grpcio-health-checking "
            f"({type(error).__name__}: {error}).\nInstall them with: python3 -m pip install "
            f"grpcio protobuf grpcio-health-checking (or pip install the snakepit_bridge package)\n",
        )
    adapter_class = import_adapter(options.adapter)
    if options.thread_profile:
        require_thread_safe(adapter_class, options.adapter, "--threads")
    serve(options, adapter_class, drain, ready_out)
