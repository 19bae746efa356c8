"""The fault tools of ``snakepit_showcase.faults``, in process: what the
Rust fault suite relies on them to do."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

from snakepit_showcase.faults import cut_connections, garbage


def test_garbage_is_no_text_and_its_lines_are_far_past_any_line_limit() -> None:
    data = garbage(1 << 20)
    assert len(data) == 1 << 20
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    lines = data.split(b"\n")
    assert len(lines) > 1
    assert min(len(line) for line in lines[:-1]) >= 100_000


def test_cut_connections_shuts_connected_sockets_and_spares_listening_ones() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "s")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen()
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        server, _ = listener.accept()
        try:
            assert cut_connections() >= 2
            assert client.recv(1) == b""  # the peer's end is shut down
            assert server.recv(1) == b""
            # The listener still accepts.
            again = socket.socket(socket.AF_UNIX)
            again.connect(path)
            accepted, _ = listener.accept()
            accepted.close()
            again.close()
        finally:
            for sock in (client, server, listener):
                sock.close()
