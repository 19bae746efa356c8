"""An adapter whose module imports a module that does not exist.

The class itself is fine; the import of this module fails with
ModuleNotFoundError, as an adapter with a missing dependency would.
"""

import this_module_does_not_exist_xyz  # type: ignore[import-not-found]  # noqa: F401 - missing on purpose

from snakepit_bridge import BaseAdapter, tool


class BadInitAdapter(BaseAdapter):
    """Never reached: the import above fails first."""

    def __init__(self) -> None:
        super().__init__()

    @tool
    def ping(self) -> str:
        """Answers 'pong'."""
        return "pong"
