"""The delaying relay of ``otel-demo --rtt``: real sockets on loopback, an echo server behind it.

Only lower bounds on time are checked (a relay can be slower than its RTT on a busy machine,
never faster), so no test depends on this machine's speed.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_run.demo import _cli, _rtt

RTT = 0.2


@pytest.fixture
def echo() -> Iterator[int]:
    """An echo server on a free port: it returns what it reads, and closes when the client does."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def relay(echo: int) -> Iterator[_rtt.Relay]:
    with _rtt.relaying([_rtt.Route(_cli._free_port(), echo)], RTT, handshakes=1) as started:
        yield started


def _connect(relay: _rtt.Relay) -> socket.socket:
    return socket.create_connection(("127.0.0.1", relay.routes[0].listen_port), timeout=30)


def _exchange(conn: socket.socket, payload: bytes) -> bytes:
    conn.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = conn.recv(65536)
        assert chunk, "the relay closed before the whole payload came back"
        got += chunk
    return got


def test_a_large_payload_comes_back_intact_and_in_order(relay: _rtt.Relay) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB: many chunks, each delayed on its own
    with _connect(relay) as conn:
        assert _exchange(conn, payload) == payload
    stats = relay.routes[0].stats
    assert stats.bytes_up == len(payload)


def test_a_new_connection_pays_its_handshakes_and_a_kept_alive_one_only_the_rtt(relay: _rtt.Relay) -> None:
    with _connect(relay) as conn:
        start = time.monotonic()
        assert _exchange(conn, b"first") == b"first"
        first = time.monotonic() - start
        start = time.monotonic()
        assert _exchange(conn, b"second") == b"second"
        second = time.monotonic() - start
    assert first >= (1 + 1) * RTT  # one handshake round-trip, then the request's own
    assert second >= RTT
    assert relay.routes[0].stats.connections == 1  # the second exchange reused the connection


def test_each_connection_is_counted_and_a_close_reaches_the_client(relay: _rtt.Relay) -> None:
    for _ in range(3):
        with _connect(relay) as conn:
            assert _exchange(conn, b"x") == b"x"
            conn.shutdown(socket.SHUT_WR)  # the echo server sees EOF and closes; so must we
            assert conn.recv(10) == b""
    assert relay.routes[0].stats.connections == 3
    assert ":%d 3 connections" % relay.routes[0].listen_port in relay.summary()
    assert "emulated RTT 200 ms (1 handshake RTTs per connection)" in relay.summary()


def test_a_taken_port_is_an_oserror_and_leaves_no_thread(echo: int) -> None:
    relay = _rtt.Relay([_rtt.Route(echo, echo)], RTT)  # the echo server holds the port
    with pytest.raises(OSError):
        relay.start()
    assert not any(t.name == "otel-demo-rtt" and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("value", ["-5", "abc", "inf", "nan"])
def test_a_bad_rtt_is_a_usage_error_naming_the_flag(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["--rtt", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("otel-demo: error: argument --rtt:") and err.count("\n") == 1


def test_a_codeflash_that_is_not_an_executable_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["--codeflash", "/nonexistent/codeflash"]) == 1
    err = capsys.readouterr().err
    assert err == "otel-demo: error: --codeflash: /nonexistent/codeflash is not an executable file\n"


def test_pypi_is_reached_directly_only_when_asked(tmp_path: Path) -> None:
    home = tmp_path
    closed = _cli.codeflash_environment({}, home, 1.0)
    opened = _cli.codeflash_environment({}, home, 1.0, pypi=True)
    assert "pypi.org" not in closed["NO_PROXY"].split(",")
    assert opened["NO_PROXY"].split(",") == ["localhost", "127.0.0.1", "pypi.org"]
    assert opened["HTTPS_PROXY"] == closed["HTTPS_PROXY"] == _cli.CLOSED_PORT_PROXY  # the rest stays closed
