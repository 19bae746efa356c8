"""The pool's shared secret, on the worker's side.

The host that starts a worker gives it a random token in the environment
variable :data:`ENV_VAR`. The worker then

- refuses every call that does not carry the token under the request
  metadata key :data:`HEADER` (``UNAUTHENTICATED``): on TCP, any local user
  could otherwise call its tools;
- sends the token with every call to the host's callback server, which
  refuses callers without it.

A worker started without the variable (by a Snakepit host, or by hand)
checks nothing, as before. The worker removes the variable from its
environment at start-up, so that processes its tools start do not inherit
the secret.

This module imports nothing but the standard library: the worker reads the
token before it imports gRPC.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence

ENV_VAR = "SNAKEPIT_POOL_TOKEN"
"""The environment variable the host puts the token in."""

HEADER = "x-snakepit-pool-token"
"""The request metadata key that carries the token, both ways."""

Metadata = Sequence[tuple[str, str | bytes]]


def take_from_environment() -> str | None:
    """The token the host gave, removed from ``os.environ``; None when there is none."""
    token = os.environ.pop(ENV_VAR, "")
    return token or None


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata that presents ``token`` on an outgoing call (empty without one)."""
    return ((HEADER, token),) if token else ()


def presented(metadata: Metadata | None, token: str) -> bool:
    """Whether ``metadata`` carries ``token``, compared in constant time."""
    expected = token.encode()
    for key, value in metadata or ():
        if key == HEADER:
            given = value if isinstance(value, bytes) else value.encode()
            if hmac.compare_digest(given, expected):
                return True
    return False
