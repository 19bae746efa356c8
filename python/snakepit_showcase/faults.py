"""An adapter for fault-tolerance tests: it crashes on request, once, and
refuses to import while a marker file exists (a worker stuck in a crash
loop at start-up).

The marker is named by the environment variable ``SNAKEPIT_FAULTS_MARKER``.
"""

from __future__ import annotations

import os

from snakepit_bridge import BaseAdapter, tool
from snakepit_showcase.adapter import ShowcaseTools

_MARKER = os.environ.get("SNAKEPIT_FAULTS_MARKER", "")
if _MARKER and os.path.exists(_MARKER):
    raise RuntimeError(f"faults adapter: refusing to start while {_MARKER} exists")


class FaultyAdapter(ShowcaseTools, BaseAdapter):
    """The showcase tools plus ``crash_once``."""

    @tool(description="Kills its process the first time (creating `path`); returns 'survived' after")
    def crash_once(self, path: str) -> str:
        if not os.path.exists(path):
            with open(path, "w", encoding="utf-8"):
                pass
            os._exit(13)
        return "survived"
