"""``snakepit-worker`` and ``python3 -m snakepit_bridge``: the worker's command.

``snakepit-worker serve --adapter pkg.Class ...`` runs the long-lived
remote worker (:mod:`snakepit_bridge.serve`); any other command line is
the local worker's (:mod:`snakepit_bridge.worker`, what ``grpc_server.py``
runs for a host that starts its own workers).
"""

from __future__ import annotations

import sys
from typing import NoReturn

USAGE = """usage: snakepit-worker serve --adapter pkg.Class [options]   (a remote worker; serve --help)
       snakepit-worker --adapter pkg.Class [options]         (a local worker, as grpc_server.py; --adapter x --help)
"""


def main(argv: list[str] | None = None) -> NoReturn:
    """Dispatches to the ``serve`` mode or the local worker. Never returns."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["serve"]:
        from .serve import main as serve_main

        serve_main(args[1:])
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        raise SystemExit(0 if args else 2)
    from .worker import main as worker_main

    worker_main(args)


if __name__ == "__main__":
    main()
