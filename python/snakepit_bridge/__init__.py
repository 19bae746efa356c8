"""snakepit_bridge: the Python side of snakepit.

A worker process (``grpc_server.py`` -> :mod:`snakepit_bridge.worker`) serves
an adapter's tools over gRPC to the Rust host. Write an adapter by
subclassing :class:`BaseAdapter` (or :class:`ThreadSafeAdapter` for the
thread profile) and marking methods with :func:`tool`.

Importing this package needs neither grpcio nor protobuf, and neither do
the adapter modules (``base_adapter``, ``base_adapter_threaded``,
``session_context``) nor the worker's entry point and lifetime
(``worker``, ``command_line``, ``lifetime``, ``sessions``): adapters and
their tests import them without. ``protocol``, ``serialization`` and
``adapter_provider`` need protobuf; ``host_client``, ``servicer`` and
``server`` need grpcio as well.
"""

from .base_adapter import BaseAdapter, InvalidArgumentsError, ToolNotFoundError, tool
from .base_adapter_threaded import ThreadSafeAdapter, thread_safe_method
from .session_context import SessionContext

__version__ = "0.1.0"

__all__ = [
    "BaseAdapter",
    "InvalidArgumentsError",
    "SessionContext",
    "ThreadSafeAdapter",
    "ToolNotFoundError",
    "__version__",
    "thread_safe_method",
    "tool",
]
