"""snakepit_bridge: the Python side of snakepit.

A worker process (``grpc_server.py`` -> :mod:`snakepit_bridge.worker`) serves
an adapter's tools over gRPC to the Rust host. ``snakepit-worker serve``
(:mod:`snakepit_bridge.serve`, also ``python3 -m snakepit_bridge serve``) is
the remote worker a host reaches over the network (TLS, bearer token,
``grpc.health.v1``). Write an adapter by
subclassing :class:`BaseAdapter` (or :class:`ThreadSafeAdapter` for the
thread profile) and marking methods with :func:`tool`.

Snakepit's Python surface is here under its module paths: ``base_adapter``,
``base_adapter_threaded``, ``session_context``, ``logging_config``,
``telemetry``, ``serialization`` (``TypeSerializer``,
``GracefulJSONEncoder``), ``zero_copy`` and the top-level
``snakepit_bridge_pb2``.

Importing this package needs neither grpcio nor protobuf, and neither do
the adapter modules (``base_adapter``, ``base_adapter_threaded``,
``session_context``, ``telemetry``, ``logging_config``, ``zero_copy``) nor
the worker's entry point and lifetime (``worker``, ``serve``, ``command_line``,
``lifetime``, ``sessions``): adapters and their tests import them without.
``BaseAdapter.get_tools`` and ``register_with_session``, ``protocol``,
``serialization``, ``adapter_provider`` and ``snakepit_bridge_pb2`` need
protobuf; ``host_client``, ``servicer`` and ``server`` need grpcio as well,
and ``remote_server`` also grpcio-health-checking.
"""

from . import telemetry
from .base_adapter import BaseAdapter, InvalidArgumentsError, ToolMetadata, ToolNotFoundError, tool
from .base_adapter_threaded import ThreadSafeAdapter, thread_safe_method
from .logging_config import configure_logging, get_logger
from .session_context import SessionContext

__version__ = "0.1.0"

__all__ = [
    "BaseAdapter",
    "InvalidArgumentsError",
    "SessionContext",
    "ThreadSafeAdapter",
    "ToolMetadata",
    "ToolNotFoundError",
    "__version__",
    "configure_logging",
    "get_logger",
    "telemetry",
    "thread_safe_method",
    "tool",
]
