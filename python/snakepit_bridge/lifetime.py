"""The worker process's lifetime: how it starts, signals readiness and ends.

A worker must not outlive its host, even one killed with SIGKILL: it asks
Linux for a parent-death signal and watches its stdin pipe (EOF means the
host is gone). Whatever it started (the tools' children) dies with it: as
leader of its own process group it signals the group, and always its
descendants. On Linux it is a child subreaper, so a tool's daemon (a new
session, its parent gone) is re-parented to the worker instead of init and
is still a descendant when the worker ends; what ignores SIGTERM gets
SIGKILL after :data:`DESCENDANTS_GRACE_S`. Readiness is a file the host
waits for. Every way the process ends early is an exit status of its own,
with a message on stderr.

Nothing here needs grpcio or protobuf: all of it is armed before they are
imported.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
import sys
import threading
import time
from types import FrameType
from typing import Callable, NoReturn

EXIT_ADAPTER = 3
"""Exit status when the adapter cannot be imported or does not fit the profile."""
EXIT_DEPENDENCIES = 4
"""Exit status when grpcio or protobuf cannot be imported."""
EXIT_HOST_UNREACHABLE = 5
"""Exit status when ``--elixir-address`` never answers ``Ping``."""
EXIT_BIND = 6
"""Exit status when the listening address cannot be bound."""

READY_FILE_ENV = "SNAKEPIT_READY_FILE"
"""Environment variable naming the ready file."""

STOP_POLL_S = 0.05
"""How often the serving main thread looks at the stop flag."""

DESCENDANTS_GRACE_S = 1.0
"""How long the normal end waits for SIGTERM to end what the worker started
before it sends SIGKILL."""

_PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal this process gets when its parent dies."""

_PR_SET_CHILD_SUBREAPER = 36
"""``prctl`` option: orphaned descendants are re-parented to this process."""


def exit_with(status: int, message: str) -> NoReturn:
    """Writes ``message`` to stderr and ends the process at once with ``status``.

    ``os._exit``, not ``sys.exit``: a tool still running in a call thread, or
    a non-daemon thread of an adapter, would keep the process alive.
    """
    sys.stderr.write(message)
    sys.stderr.flush()
    os._exit(status)


def _proc_stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, process group, state letter) of ``pid`` from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses.
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[1]), int(fields[2]), fields[0]


def _started_processes() -> list[int]:
    """The live processes started by this worker (and by its tools).

    Its descendants, found by parent pid (as a subreaper that includes
    daemons whose parent is gone), and, as group leader, every other member
    of its process group.
    """
    me = os.getpid()
    leader = os.getpgrp() == me
    table: dict[int, tuple[int, int, str]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit() and int(entry) != me:
            info = _proc_stat(int(entry))
            if info is not None:
                table[int(entry)] = info
    found: set[int] = {pid for pid, (_, group, _) in table.items() if group == me} if leader else set()
    frontier = [me]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _, _) in table.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    # A zombie is already gone: only its parent's wait is missing.
    return [pid for pid in found if table[pid][2] != "Z"]


def signal_others(signum: int) -> None:
    """Sends ``signum`` to what this worker started, never to itself."""
    for pid in _started_processes():
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


def end_started_processes(grace_s: float = DESCENDANTS_GRACE_S) -> None:
    """SIGTERM to what this worker started, then SIGKILL to what is left
    after ``grace_s`` (checked as they go, not slept through)."""
    signal_own_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _started_processes() and time.monotonic() < deadline:
        time.sleep(0.01)
    signal_others(signal.SIGKILL)


def become_subreaper() -> None:
    """Makes orphaned descendants (a tool's daemon whose parent exited) this
    process's children instead of init's, so they are found and ended with
    the worker. Linux only; best effort elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def signal_own_group(signum: int) -> None:
    """Sends ``signum`` to our process group while ignoring it ourselves."""
    if os.getpgrp() != os.getpid() or not os.path.isdir("/proc"):
        signal_others(signum)
        return
    with contextlib.suppress(OSError, ValueError):
        signal.signal(signum, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.killpg(os.getpgrp(), signum)
    # Descendants in a session or group of their own.
    signal_others(signum)


def arm_parent_death_signal(original_parent: int) -> None:
    """Asks Linux for SIGTERM when the parent dies; exits if it already has."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort; the stdin watch remains
        return
    if os.getppid() != original_parent:
        os._exit(0)


def die_with_host() -> NoReturn:
    """The host is gone: kill everything we started, then exit at once."""
    with contextlib.suppress(Exception):
        sys.stderr.write("snakepit worker: host closed stdin; exiting\n")
        sys.stderr.flush()
    with contextlib.suppress(Exception):
        signal_own_group(signal.SIGTERM)
        signal_others(signal.SIGKILL)
    if os.getpgrp() == os.getpid() and not os.path.isdir("/proc"):
        with contextlib.suppress(OSError):
            os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(0)


def watch_stdin(on_eof: Callable[[], None]) -> bool:
    """Starts a daemon thread that calls ``on_eof`` when stdin reaches EOF.

    Only when stdin is a pipe or socket (the host holds its write end); a
    TTY, a file or /dev/null is not watched. Returns whether it watches.
    """
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    if os.isatty(0) or not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return False
    # Tools must not read the host's pipe.
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def watch() -> None:
        while True:
            try:
                chunk = os.read(0, 65536)
            except InterruptedError:
                continue
            except OSError:
                break
            if not chunk:
                break
        on_eof()

    threading.Thread(target=watch, name="snakepit-stdin-watch", daemon=True).start()
    return True


def route_stdout_to_stderr() -> None:
    """Everything printed goes to stderr, which the host logs line by line."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        os.dup2(2, 1)
    sys.stdout = sys.stderr


def end_process() -> NoReturn:
    """The normal end: SIGTERM to what we started (SIGKILL to what is left
    after :data:`DESCENDANTS_GRACE_S`), then exit 0 at once."""
    end_started_processes()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    # Not sys.exit: a tool still running in a call thread would block it.
    os._exit(0)


def write_ready_file(content: str) -> None:
    """Writes ``SNAKEPIT_READY_FILE`` atomically (``.tmp`` then rename)."""
    path = os.environ.get(READY_FILE_ENV)
    if not path:
        return
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class StopSignals:
    """SIGTERM and SIGINT, from start-up to shutdown.

    Before :meth:`serving` a signal ends the process at once (with what it
    started); afterwards it only asks the main thread, waiting in
    :meth:`wait`, to shut the server down gracefully.

    The state is plain attributes, not a ``threading.Event``: a signal
    handler that takes a lock the interrupted main thread may hold would
    deadlock.
    """

    def __init__(self) -> None:
        self._serving = False
        self._stop = False

    def install(self) -> None:
        """Makes SIGTERM and SIGINT handled by this object."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def serving(self) -> None:
        """From now on a signal asks for a graceful stop."""
        self._serving = True

    def wait(self) -> None:
        """Blocks the main thread until a signal asks for a stop."""
        # Polled: the handler cannot set an Event (see the class docs).
        while not self._stop:
            time.sleep(STOP_POLL_S)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._serving:
            self._stop = True
            return
        signal_own_group(signal.SIGTERM)
        os._exit(0)
