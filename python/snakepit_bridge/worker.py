"""The worker's entry point: serves one adapter's tools to the host, over gRPC
or (``--transport socket``) the socket transport's frames.

Command line (the Snakepit contract, plus our extensions)::

    grpc_server.py --adapter module.Class [--port N | --socket PATH]
                   [--elixir-address HOST:PORT|unix:PATH] [--max-workers N]
                   [--thread-safety-check] [--max-message-bytes N]
                   [--worker-id ID] [--adapter-per-worker] [--bind-host HOST]
                   [--transport grpc|socket]

Unknown flags (Snakepit hosts add ``--snakepit-run-id`` and others) are
logged and ignored. The worker id defaults to ``SNAKEPIT_WORKER_ID``.

Start-up, in order: route stdout to stderr; arm the parent-death signal,
become a child subreaper (Linux) and arm the stdin watch (EOF on stdin
means the host is gone); import grpc and
protobuf (exit 4 if missing); import the adapter (exit 3 with the traceback
if that fails, or if ``--max-workers`` is given for an adapter that is not
``__thread_safe__``); wait for the host's ``Ping`` when ``--elixir-address``
is given (exit 5 if it never answers); bind (exit 6 on failure); start; then
write the ready file named by ``SNAKEPIT_READY_FILE``: the port number for
TCP, ``unix:PATH`` for a socket, written to ``<file>.tmp`` and renamed.

Profiles: without ``--max-workers`` tool calls run one at a time (the
process profile) while Ping and session calls still answer; with
``--max-workers N`` up to N tool calls run at once (the thread profile).

SIGTERM (or SIGINT) stops the server with a short grace, sends SIGTERM to the
rest of the process group and to every descendant (what the tools started;
on Linux the worker is a child subreaper, so that includes daemons in a
session of their own whose parent exited), SIGKILL to what is left a second
later, and exits 0.

The parts, each in a module of its own: :mod:`~snakepit_bridge.command_line`
(the flags), :mod:`~snakepit_bridge.lifetime` (signals, parent-death and
stdin watch, process group, ready file, exit statuses),
:mod:`~snakepit_bridge.server` (bind, serve, stop),
:mod:`~snakepit_bridge.servicer` (the rpcs),
:mod:`~snakepit_bridge.adapter_provider` (adapters per call or per process),
:mod:`~snakepit_bridge.sessions` (each session's store) and
:mod:`~snakepit_bridge.host_client` (the way back to the host). Imports point one way:
``worker -> server -> servicer -> adapter_provider, sessions, host_client
-> serialization -> protocol``; ``command_line`` and ``lifetime`` import
nothing of the package, ``logging_config`` only ``telemetry``. Only this
module and those are imported before grpcio and protobuf.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn

from . import pool_token
from .command_line import WorkerOptions, parse_args
from .lifetime import (
    EXIT_ADAPTER,
    EXIT_DEPENDENCIES,
    StopSignals,
    arm_parent_death_signal,
    become_subreaper,
    die_with_host,
    exit_with,
    route_stdout_to_stderr,
    watch_stdin,
)
from .logging_config import WORKER_ID_ENV, configure_logging

REQUIREMENTS_FILE = Path(__file__).resolve().parent.parent / "requirements.txt"
"""The requirements file shipped next to ``grpc_server.py``."""

log = logging.getLogger("snakepit.worker")


def import_server(transport: str = "grpc") -> Callable[[WorkerOptions, str, Callable[[], Any], StopSignals], NoReturn]:
    """Imports the server for ``transport`` and returns its ``serve``: the
    gRPC server (grpcio, protobuf and what is built on them), or for
    ``socket`` the frame server (protobuf only: grpc stays unimported unless
    host tools need it); exits 4 naming the fix if they are missing."""
    # The one deferred import of the package: it must come after the lifetime
    # safety is armed, and a missing grpcio must end in exit 4 and the
    # command that fixes it, not in a traceback.
    try:
        if transport == "socket":
            from .socket_server import serve
        else:
            from .server import serve
    except Exception as error:  # noqa: BLE001 - ImportError or a too old protobuf
        exit_with(
            EXIT_DEPENDENCIES,
            f"snakepit worker: cannot import grpcio/protobuf ({type(error).__name__}: {error}).\n"
            f"Install them with: python3 -m pip install -r {REQUIREMENTS_FILE}\n"
            f"(using the interpreter the host runs: {sys.executable})\n",
        )
    return serve


def require_thread_safe(adapter_class: Callable[[], Any], spec: str, threads_flag: str) -> None:
    """Exits 3 unless ``adapter_class`` is marked thread-safe, as the thread
    profile (asked for with ``threads_flag``) needs."""
    if not getattr(adapter_class, "__thread_safe__", False):
        exit_with(
            EXIT_ADAPTER,
            f"snakepit worker: adapter {spec} is not marked thread-safe (__thread_safe__ = True); "
            f"use ThreadSafeAdapter or the process profile (no {threads_flag})\n",
        )


def import_adapter(spec: str) -> Callable[[], Any]:
    """Imports ``module.Class``; exits 3 with the traceback on failure."""
    module_name, _, class_name = spec.rpartition(".")
    try:
        if not module_name or not class_name:
            raise ImportError(f"--adapter must be module.Class, got {spec!r}")
        module = importlib.import_module(module_name)
        try:
            adapter_class: Callable[[], Any] = getattr(module, class_name)
        except AttributeError:
            raise ImportError(f"module {module_name!r} has no adapter class {class_name!r}") from None
        return adapter_class
    except BaseException:  # noqa: BLE001 - any failure at import is reported the same way
        sys.stderr.write(f"snakepit worker: cannot import adapter {spec}\n")
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        os._exit(EXIT_ADAPTER)


def main(argv: list[str] | None = None) -> NoReturn:
    """Runs a worker until SIGTERM, SIGINT or EOF on stdin. Never returns."""
    original_parent = os.getppid()
    route_stdout_to_stderr()
    options = dataclasses.replace(parse_args(argv), pool_token=pool_token.take_from_environment())
    worker_id = options.worker_id or os.environ.get(WORKER_ID_ENV) or f"pid-{os.getpid()}"
    configure_logging(force=True, worker_id=worker_id)
    if options.unknown:
        log.warning("ignoring unknown arguments: %s", " ".join(options.unknown))

    # Lifetime safety first: nothing below may outlive the host.
    stop = StopSignals()
    stop.install()
    arm_parent_death_signal(original_parent)
    become_subreaper()
    watch_stdin(die_with_host)

    serve = import_server(options.transport)
    adapter_class = import_adapter(options.adapter)
    if options.thread_profile:
        require_thread_safe(adapter_class, options.adapter, "--max-workers")
    serve(options, worker_id, adapter_class, stop)
