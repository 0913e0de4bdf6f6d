"""A TCP relay on loopback that adds a network round-trip time: ``otel-demo --rtt MS``.

It stands in for the internet path between a user's machine and ``app.codeflash.ai``, which this
machine cannot emulate in the kernel (no ``netem`` qdisc). codeflash's local mode talks to fixed
ports (``localhost:8000``, ``:3001``): with ``--rtt`` the reference backend listens on free ports and
a relay on each fixed port forwards to it, so codeflash's requests pay what a real link makes them pay:

* each chunk of bytes, in either direction, is delivered ``rtt / 2`` after the relay received it
  (one queue per direction with due times: bytes are neither reordered nor serialized behind one
  another's delays, so a pipelined or streamed response costs one RTT, not one per chunk);
* a new connection pays ``handshakes`` more round-trips before its first byte reaches the server
  (default 2: TCP's SYN/SYN-ACK and a TLS 1.3 handshake, as to an ``https`` service), so a request
  on a new connection costs ``(handshakes + 1) × rtt`` and one on a kept-alive connection ``rtt``;
* a half-close or close is passed on after the same delay as the bytes before it.

The relay runs on its own thread with an asyncio loop; it counts connections and bytes per port.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

CHUNK = 65536
DEFAULT_HANDSHAKES = 2


@dataclass
class PortStats:
    """What went through one relayed port."""

    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


@dataclass
class Route:
    """Relay ``listen_port`` on loopback to ``target_port``."""

    listen_port: int
    target_port: int
    stats: PortStats = field(default_factory=PortStats)


class Relay:
    """Delaying relays on 127.0.0.1, one per route, served by one background thread.

    Args:
        routes: the ports to listen on and where to forward each.
        rtt_s: the round-trip time to add, in seconds.
        handshakes: extra round-trips a new connection pays before its first byte.
    """

    def __init__(self, routes: list[Route], rtt_s: float, handshakes: int = DEFAULT_HANDSHAKES) -> None:
        self.routes = routes
        self.rtt_s = rtt_s
        self.handshakes = handshakes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="otel-demo-rtt", daemon=True)
        self._servers: list[asyncio.base_events.Server] = []

    def start(self) -> None:
        """Listen on every route's port (raises OSError if one is taken) and serve in the background."""
        self._thread.start()
        try:
            for route in self.routes:
                future = asyncio.run_coroutine_threadsafe(self._listen(route), self._loop)
                self._servers.append(future.result(timeout=10))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Close the listeners and every relayed connection; stop the thread."""
        if not self._thread.is_alive():
            return

        async def close() -> None:
            for server in self._servers:
                server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def summary(self) -> str:
        """One line: the emulated link and the connections per port."""
        ports = ", ".join(f":{r.listen_port} {r.stats.connections} connections" for r in self.routes)
        return f"emulated RTT {self.rtt_s * 1000:g} ms ({self.handshakes} handshake RTTs per connection): {ports}"

    async def _listen(self, route: Route) -> asyncio.base_events.Server:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._relay(route, reader, writer)

        return await asyncio.start_server(accepted, "127.0.0.1", route.listen_port, reuse_address=True)

    async def _relay(self, route: Route, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        route.stats.connections += 1
        loop = asyncio.get_running_loop()
        opened = loop.time()
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", route.target_port)
        except OSError:
            client_w.close()
            return
        # the handshakes end before the client's first byte can leave: that byte then takes rtt/2 more
        first_byte_at = opened + self.handshakes * self.rtt_s
        up = _Pipe(client_r, server_w, self.rtt_s / 2, first_byte_at, route.stats, up=True)
        down = _Pipe(server_r, client_w, self.rtt_s / 2, opened, route.stats, up=False)
        try:
            await asyncio.gather(up.run(), down.run())
        finally:
            for writer in (client_w, server_w):
                with contextlib.suppress(Exception):
                    writer.close()


class _Pipe:
    """One direction of a relayed connection: read, hold each chunk for ``delay_s``, write in order."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delay_s: float,
        not_before: float,
        stats: PortStats,
        up: bool,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.delay_s, self.not_before = delay_s, not_before
        self.stats, self.up = stats, up
        self.queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def run(self) -> None:
        sender = asyncio.ensure_future(self._send())
        try:
            await self._receive()
            await sender
        finally:
            sender.cancel()

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await self.reader.read(CHUNK)
            except (ConnectionError, OSError):
                data = b""
            due = max(loop.time(), self.not_before) + self.delay_s
            await self.queue.put((due, data))
            if not data:  # end of stream: passed on, in order, after the same delay
                return
            if self.up:
                self.stats.bytes_up += len(data)
            else:
                self.stats.bytes_down += len(data)

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await self.queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if not data:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    await self.writer.drain()
                    return
                self.writer.write(data)
                await self.writer.drain()
            except (ConnectionError, OSError):
                return


@contextlib.contextmanager
def relaying(routes: list[Route], rtt_s: float, handshakes: int = DEFAULT_HANDSHAKES) -> Iterator[Relay]:
    """A started :class:`Relay` for the block."""
    relay = Relay(routes, rtt_s, handshakes)
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()
