"""An adapter written the way Snakepit's documentation writes them, to show
that such adapters run under this host unchanged: a module-level cache that
outlives adapter instances, async ``initialize``/``cleanup`` around every
call, ``@tool`` methods with type hints, and its own ``execute_tool``.
"""

from __future__ import annotations

import time
from typing import Any

from snakepit_bridge.base_adapter import BaseAdapter, tool

# Loaded once per process, shared by every adapter instance.
_MODEL_CACHE: dict[str, Any] = {}
_LIFECYCLE = {"initialize": 0, "cleanup": 0, "execute_tool": 0}


class SnakepitStyleAdapter(BaseAdapter):
    """A tiny "model" adapter in Snakepit's style."""

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, Any] | None = None

    async def initialize(self) -> None:
        _LIFECYCLE["initialize"] += 1
        if "model" not in _MODEL_CACHE:
            _MODEL_CACHE["model"] = {"weights": [0.5, 2.0], "loaded_at": time.time()}
        self.model = _MODEL_CACHE["model"]

    async def cleanup(self) -> None:
        _LIFECYCLE["cleanup"] += 1
        self.model = None

    def execute_tool(self, tool_name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        # Snakepit adapters may route calls themselves.
        _LIFECYCLE["execute_tool"] += 1
        return super().execute_tool(tool_name, arguments, context)

    @tool(description="Scores a text with the cached model")
    def predict(self, text: str, boost: float = 1.0) -> dict[str, Any]:
        assert self.model is not None, "initialize() did not run before the tool"
        weight, bias = self.model["weights"]
        return {"score": len(text) * weight * boost + bias, "model_loaded_at": self.model["loaded_at"]}

    @tool(description="How many times each lifecycle hook has run in this process")
    def lifecycle(self) -> dict[str, int]:
        return dict(_LIFECYCLE)
