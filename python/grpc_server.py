#!/usr/bin/env python3
"""Launches a snakepit worker: ``python3 grpc_server.py --adapter module.Class ...``.

The host runs this script; see :mod:`snakepit_bridge.worker` for the flags.
It puts its own directory first on ``sys.path`` so that the
``snakepit_bridge`` next to it is the one imported.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path[:1] != [_HERE]:
    sys.path.insert(0, _HERE)

from snakepit_bridge.worker import main  # noqa: E402 - needs the path set above

if __name__ == "__main__":
    main()
