"""The model server's sockets on asyncio's own transports, under httpx2.

httpx2 (through httpcore2) reads its sockets through anyio, and for a streamed answer that
is a read per token, each paying for an anyio cancel scope with its timer, an
exception-mapping context manager, and a pause and a resume of the socket's reader (two
epoll calls). With 300 answers streaming at once that was the largest single cost of an
answer on the server (bench/load.py with py-spy: ~13 of ~37 ms of CPU per answer). Here a
protocol keeps what the socket receives in a buffer: a read returns from it, or waits on one
future; a read timeout is one timer per connection, moved on only when it fires. The same
design is proposed upstream (pydantic/httpx2#1170, a native asyncio backend); once httpx2
ships it, this module goes.

Errors are httpcore2's own (ConnectError, ReadTimeout, ...): httpx2 and the `openai` client
turn them into theirs exactly as they do for anyio's.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2
from httpcore2 import ConnectError, ConnectTimeout, ReadError, ReadTimeout, WriteError, WriteTimeout

# While a connection is idle in the pool its socket is still read (so a server's close is
# known without a poll), up to HIGH_WATER bytes; then reading pauses until reads take the
# buffer below LOW_WATER.
HIGH_WATER, LOW_WATER = 256 * 1024, 64 * 1024


class Buffered(asyncio.Protocol):
    """What a socket received and has not been read yet, and whether it can still write."""

    transport: asyncio.Transport  # from connection_made, before any data

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.ended = False  # the peer closed, or the connection was lost
        self.error: Exception | None = None
        self.reading_paused = False
        self.waiter: asyncio.Future[None] | None = None  # a read waiting for data
        self.deadline = 0.0  # when the waiting read times out, in the loop's time
        self.alarm: asyncio.TimerHandle | None = None  # fires at or before the deadline
        self.drained: asyncio.Future[None] | None = None  # set while writing is paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > HIGH_WATER and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        self.wake()

    def eof_received(self) -> bool:
        self.ended = True
        self.wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self.wake()
        if self.alarm is not None:
            self.alarm.cancel()
            self.alarm = None
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def time_out_at(self, deadline: float) -> None:
        """The waiting read fails at `deadline`. One timer per connection, which moves only
        when it fires: a streamed answer is a read per token, and a timer armed and
        cancelled for each (with its ReadTimeout made in advance) cost ~4% of the server's
        CPU with 300 answers streaming."""
        self.deadline = deadline
        if self.alarm is not None and self.alarm.when() <= deadline:
            return  # it fires first, and then waits on for the rest
        if self.alarm is not None:
            self.alarm.cancel()
        self.alarm = asyncio.get_running_loop().call_at(deadline, self.check_deadline)

    def check_deadline(self) -> None:
        self.alarm = None
        if self.waiter is None or self.waiter.done():
            return  # no read waits: the next one sets the timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= self.deadline:
            self.waiter.set_exception(ReadTimeout("reading timed out"))
        else:
            self.alarm = loop.call_at(self.deadline, self.check_deadline)

    def take(self, max_bytes: int) -> bytes:
        chunk = self.chunks.popleft()
        if len(chunk) > max_bytes:
            self.chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        self.size -= len(chunk)
        if self.reading_paused and self.size < LOW_WATER:
            self.transport.resume_reading()
            self.reading_paused = False
        return chunk


async def within(future: asyncio.Future[Any], timeout: float | None, error: Exception) -> None:
    """Wait for `future`; after `timeout` seconds (None: no limit), raise `error` instead."""
    if timeout is None:
        await future
        return
    timer = asyncio.get_running_loop().call_later(
        timeout, lambda: future.done() or future.set_exception(error)
    )
    try:
        await future
    finally:
        timer.cancel()


class AsyncioStream(httpcore2.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: Buffered) -> None:
        self.transport, self.protocol = transport, protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self.protocol
        if not protocol.chunks and not protocol.ended:
            loop = asyncio.get_running_loop()
            protocol.waiter = loop.create_future()
            if timeout is not None:
                protocol.time_out_at(loop.time() + timeout)
            try:
                await protocol.waiter
            finally:
                protocol.waiter = None
        if protocol.chunks:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self.protocol.ended or self.transport.is_closing():
            raise WriteError("the connection is closed")
        self.transport.write(buffer)
        if (drained := self.protocol.drained) is not None:  # the peer reads slower than we write
            await within(drained, timeout, WriteTimeout("writing timed out"))
            if self.protocol.ended:
                raise WriteError("the connection was lost while writing")

    async def aclose(self) -> None:
        self.transport.close()
        await asyncio.sleep(0)  # connection_lost runs: the socket is closed when we return

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self.transport, self.protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self.transport.close()
            raise ConnectTimeout("the TLS handshake timed out") from None
        except (OSError, ssl.SSLError) as exc:
            self.transport.close()
            raise ConnectError(str(exc)) from exc
        assert isinstance(transport, asyncio.Transport)
        self.protocol.transport = transport
        return AsyncioStream(transport, self.protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # asked of an idle pooled connection: has the server closed it?
            return bool(self.protocol.chunks) or self.protocol.ended
        names = {"client_addr": "sockname", "server_addr": "peername"}
        if info in ("ssl_object", "socket", *names):
            return self.transport.get_extra_info(names.get(info, info))
        return None


class AsyncioBackend(httpcore2.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    Buffered, host, port, local_addr=local
                )
        except TimeoutError:
            raise ConnectTimeout("connecting timed out") from None
        except OSError as exc:
            raise ConnectError(str(exc)) from exc
        for option in socket_options or ():  # asyncio sets TCP_NODELAY itself
            transport.get_extra_info("socket").setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def asyncio_transport(limits: httpx2.Limits) -> httpx2.AsyncHTTPTransport:
    """httpx2's own transport (TLS settings, limits, error mapping), its connections opened
    and read by AsyncioBackend. (A client given a transport ignores the environment's
    proxies: openai.http_client() keeps the default client where one is set.)"""
    transport = httpx2.AsyncHTTPTransport(limits=limits)
    # httpx2 has no parameter for httpcore2's network backend; its pool has the attribute.
    # tests/providers/test_sockets.py fails if a request no longer goes through ours.
    transport._pool._network_backend = AsyncioBackend()  # type: ignore[attr-defined]
    return transport
