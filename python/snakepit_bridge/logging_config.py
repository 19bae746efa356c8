"""The worker's logging: one line per record on stderr, with the worker id
and the call's correlation id.

The worker sets it up at start-up (:func:`configure_logging`); adapters
take their loggers with :func:`get_logger`. A record logged during a call
ends with ``[correlation_id=...]`` (see :mod:`snakepit_bridge.telemetry`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from .telemetry import get_correlation_id

LOG_LEVEL_ENV = "SNAKEPIT_LOG_LEVEL"
"""Environment variable with the logging level (default ``INFO``)."""

WORKER_ID_ENV = "SNAKEPIT_WORKER_ID"
"""Environment variable with the worker id."""

_lock = threading.Lock()
_configured = False


class CorrelationFilter(logging.Filter):
    """Adds ``correlation_id`` (``"-"`` when none) and ``correlation``
    (``" [correlation_id=..]"``, or empty) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        correlation_id = get_correlation_id()
        record.correlation_id = correlation_id or "-"
        record.correlation = f" [correlation_id={correlation_id}]" if correlation_id else ""
        return True


def configure_logging(force: bool = False, worker_id: str | None = None, level: str | None = None) -> None:
    """Sets up the root logger once: stderr, ``level`` (default
    ``SNAKEPIT_LOG_LEVEL`` or ``INFO``), the worker id (default
    ``SNAKEPIT_WORKER_ID``) and the correlation id on each line. Later calls
    do nothing unless ``force``."""
    global _configured
    with _lock:
        if _configured and not force:
            return
        name = worker_id or os.environ.get(WORKER_ID_ENV) or f"pid-{os.getpid()}"
        chosen = (level or os.environ.get(LOG_LEVEL_ENV, "INFO")).upper()
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(CorrelationFilter())
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s.%(msecs)03d %(levelname)s [{name}] %(name)s: %(message)s%(correlation)s",
                datefmt="%H:%M:%S",
            )
        )
        logging.basicConfig(level=getattr(logging, chosen, logging.INFO), handlers=[handler], force=True)
        _configured = True


def get_logger(name: str) -> logging.Logger:
    """A logger under the worker's logging setup (set up now if it is not yet)."""
    configure_logging()
    return logging.getLogger(name)
