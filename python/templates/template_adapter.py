"""template_adapter: a snakepit adapter.

A snakepit pool runs this class in its Python worker processes. From Rust:

    pool.execute_blocking("greet", json!({"name": "Ada"}))?

From a shell, with the pool in snakepit.toml:

    snakepit call greet '{"name": "Ada"}'
"""

from __future__ import annotations

from snakepit_bridge import BaseAdapter, tool


class TemplateAdapter(BaseAdapter):
    """The tools of template_adapter.

    The worker makes a new instance for every call: initialize(), the tool,
    then cleanup(). State that must outlive a call belongs at module level
    (loaded once per process) or in the session store
    (self.session_context.store).

    This adapter runs one call at a time per process (profile = "process").
    To run several at once in one process (profile = "thread"), derive from
    snakepit_bridge.ThreadSafeAdapter instead and make the tools safe to run
    concurrently.
    """

    def initialize(self) -> None:
        """Runs before each call: acquire what the tools need."""

    def cleanup(self) -> None:
        """Runs after each call, even one that failed: release it."""

    @tool(description="Greets someone by name")
    def greet(self, name: str, punctuation: str = "!") -> str:
        """Returns a greeting.

        The call's JSON object becomes the keyword arguments, checked against
        this signature before the tool runs: a missing or unknown argument
        fails the call with InvalidArguments. The type hints and the Args
        section below are what `snakepit tools` shows. The return value goes
        back as JSON (bytes go back as binary); an exception goes back as
        Error::Python with its class, message and traceback.

        Args:
            name: who to greet.
            punctuation: what ends the greeting.
        """
        return f"Hello, {name}{punctuation}"
