"""The sessions this worker process knows, by id.

A session's ``store`` is a dict that every call of the session served by
this process sees. Whether the calls of a session land on this process is
the host's routing (session affinity), not ours.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SessionRecord:
    """One session as this process knows it."""

    session_id: str
    store: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)


class SessionRegistry:
    """session id -> :class:`SessionRecord`, for this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionRecord] = {}

    def touch(self, session_id: str, metadata: dict[str, str] | None = None) -> SessionRecord:
        """The session's record, created on first use."""
        with self._lock:
            record = self._sessions.get(session_id)
            if record is None:
                record = self._sessions[session_id] = SessionRecord(session_id)
            if metadata:
                record.metadata.update(metadata)
            record.last_seen = time.time()
            return record

    def get(self, session_id: str) -> SessionRecord | None:
        """The session's record, if it exists."""
        with self._lock:
            return self._sessions.get(session_id)

    def drop(self, session_id: str) -> SessionRecord | None:
        """Forgets a session and returns what it held."""
        with self._lock:
            return self._sessions.pop(session_id, None)

    def store_for(self, session_id: str) -> dict[str, Any]:
        """The session's store; a throwaway dict when there is no session id."""
        if not session_id:
            return {}
        return self.touch(session_id).store
