"""The model server's sockets on asyncio's transports (chatapp/providers/sockets.py), through
httpx2 against real local servers: bodies arrive whole, however they are cut and however
large; timeouts, refusals, resets and a server's close of an idle connection give the errors
httpx2 gives with its own backend; TLS works; and the provider's client really uses it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chatapp.providers import sockets
from chatapp.providers.base import ChatMessage, ProviderRequest, TextChunk
from chatapp.providers.openai import OpenAIProvider
from chatapp.providers.sockets import HIGH_WATER, AsyncioBackend, asyncio_transport
from tests.fake_model import FakeModel, done, finish, text

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def server() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Start a raw HTTP server with a handler; its base URL."""
    started: list[asyncio.Server] = []

    async def start(handler: Handler, *, tls: ssl.SSLContext | None = None) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await handler(reader, writer)
            writer.close()

        started.append(await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls))
        port = started[-1].sockets[0].getsockname()[1]
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    yield start
    for each in started:
        each.close()


def client(**options: object) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=asyncio_transport(httpx2.Limits()), **options)


async def request_of(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def part_of_a_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer a request with 4 of the 1000 bytes the response says it has."""
    await request_of(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nsome")
    await writer.drain()


def response(body: bytes, *, close: bool = False) -> bytes:
    connection = "close" if close else "keep-alive"
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: {connection}\r\n\r\n"
    return head.encode() + body


async def test_a_body_sent_in_pieces_arrives_whole(server) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_of(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index in range(50):
            piece = f"piece {index};".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    url = await server(trickle)
    async with client() as http, http.stream("GET", url) as streamed:
        received = [piece async for piece in streamed.aiter_bytes()]
    assert b"".join(received) == b"".join(f"piece {i};".encode() for i in range(50))
    assert len(received) > 1  # it streamed, not buffered to the end


async def test_a_body_larger_than_the_buffer_arrives_whole_read_slowly(server) -> None:
    body = bytes(range(256)) * (4 * HIGH_WATER // 256)

    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_of(reader)
        writer.write(response(body))
        await writer.drain()

    url = await server(large)
    received = bytearray()
    async with client() as http, http.stream("GET", url) as streamed:
        await asyncio.sleep(0.2)  # everything the socket may take arrives; reading pauses
        async for piece in streamed.aiter_raw():
            received += piece
    assert bytes(received) == body


async def test_a_server_that_stops_sending_times_out(server) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await part_of_a_body(reader, writer)
        await asyncio.sleep(5)

    url = await server(stall)
    async with client(timeout=httpx2.Timeout(5, read=0.2)) as http:
        with pytest.raises(httpx2.ReadTimeout):
            await http.get(url)


async def trickle_then_stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A piece every 0.1 s for a second, then silence."""
    await request_of(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(10):
        writer.write(b"5\r\npiece\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
    await asyncio.sleep(5)


async def test_the_read_timeout_counts_from_each_read_not_from_the_first(server) -> None:
    """The timer is set once per connection and moved on lazily: a server that keeps sending
    is never timed out, one that falls silent is, a read timeout after its last piece."""
    url = await server(trickle_then_stall)
    loop = asyncio.get_running_loop()
    received, last_piece = b"", 0.0
    async with (
        client(timeout=httpx2.Timeout(5, read=0.3)) as http,
        http.stream("GET", url) as streamed,
    ):
        with pytest.raises(httpx2.ReadTimeout):
            async for piece in streamed.aiter_raw():
                received += piece
                last_piece = loop.time()
    assert received == b"piece" * 10  # a second of pieces, each within the 0.3 s
    assert 0.25 <= loop.time() - last_piece < 2


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: refused
        async with client() as http:
            with pytest.raises(httpx2.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/")


async def test_a_connection_reset_mid_body_is_a_read_error(server) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await part_of_a_body(reader, writer)
        await asyncio.sleep(0.05)
        raw = writer.get_extra_info("socket")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN

    url = await server(reset)
    async with client() as http:
        with pytest.raises(httpx2.ReadError):
            await http.get(url)


async def test_an_idle_connection_the_server_closed_is_not_reused(server) -> None:
    connections = 0

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await request_of(reader)
        writer.write(response(b"hello"))  # says keep-alive, then closes anyway
        await writer.drain()

    url = await server(once)
    async with client() as http:
        assert (await http.get(url)).content == b"hello"
        await asyncio.sleep(0.1)  # the server's close arrives while the connection is idle
        assert (await http.get(url)).content == b"hello"
    assert connections == 2


async def test_a_kept_alive_connection_is_reused(server) -> None:
    connections = 0

    async def many(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(3):
            await request_of(reader)
            writer.write(response(b"again"))
            await writer.drain()

    url = await server(many)
    async with client() as http:
        for _ in range(3):
            assert (await http.get(url)).content == b"again"
    assert connections == 1


def self_signed(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 and the certificate a client must trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


async def test_tls_is_verified_and_works(server, tmp_path: Path, monkeypatch) -> None:
    context, certificate = self_signed(tmp_path)

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_of(reader)
        writer.write(response(b"over tls", close=True))
        await writer.drain()

    url = await server(hello, tls=context)
    async with client() as http:  # certificates from the system's store: ours is not there
        with pytest.raises(httpx2.ConnectError):
            await http.get(url)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))  # a private CA, as users set one
    async with client() as http:
        assert (await http.get(url)).content == b"over tls"


async def test_the_providers_client_reads_through_it(monkeypatch) -> None:
    opened: list[tuple[str, int]] = []
    real_connect = AsyncioBackend.connect_tcp

    async def connect_tcp(self, host: str, port: int, **options: object):
        opened.append((host, port))
        return await real_connect(self, host, port, **options)

    monkeypatch.setattr(sockets.AsyncioBackend, "connect_tcp", connect_tcp)
    model = FakeModel([text("Hello", " there"), finish(), done()])
    await model.start()
    try:
        provider = OpenAIProvider(base_url=model.url, api_key="k", max_retries=0)
        request = ProviderRequest("gpt-test", "Be brief.", (ChatMessage("user", "hi"),))
        events = [event async for event in provider.stream(request)]
    finally:
        await model.close()
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == "Hello there"
    assert [host for host, _ in opened] == ["127.0.0.1"]


async def test_a_proxy_named_by_the_environment_is_used(monkeypatch) -> None:
    """httpx2 honours HTTP(S)_PROXY only for a client on its own transport: with a proxy
    set, the provider keeps that one. The fake model stands in for the proxy; the model's
    own address is a name the network guard would refuse to reach."""
    model = FakeModel([text("Through", " the proxy"), finish(), done()])
    await model.start()
    proxy = model.url.removesuffix("/v1")
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    try:
        provider = OpenAIProvider(base_url="http://models.example/v1", api_key="k", max_retries=0)
        request = ProviderRequest("gpt-test", "Be brief.", (ChatMessage("user", "hi"),))
        events = [event async for event in provider.stream(request)]
    finally:
        await model.close()
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == "Through the proxy"
    assert len(model.requests) == 1
