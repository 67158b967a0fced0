"""A fake OpenAI-compatible model for the load benchmark: every answer is TOKENS tokens, one
every DELAY seconds, and each token is the wall-clock time it was written, so a page that
receives it knows how late it is. The first token also carries when the request arrived.

    python bench/timed_model.py --port 8101 --tokens 300 --delay 0.02

Cheap on purpose (it shares a core with the clients): one clock for all streams, chunks
written from a template, no JSON encoding per token. It keeps its connections open between
answers (HTTP/1.1 chunked, as OpenAI's API and local servers answer), so a client that keeps
idle connections pays no new connection per answer, as against a real server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
CHUNK = '{"id":"b","object":"chat.completion.chunk","created":0,"model":"timed","choices":'
TEXT = "data: " + CHUNK + '[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\n\n'
END = (
    "data: " + CHUNK + '[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    'data: {"id":"b","object":"chat.completion.chunk","created":0,"model":"timed",'
    '"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":%d,"total_tokens":%d}}\n\n'
    "data: [DONE]\n\n"
)
LAST_CHUNK = b"0\r\n\r\n"


def chunked(text: str) -> bytes:
    data = text.encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


class Stream:
    def __init__(self, writer: asyncio.StreamWriter, arrived: float, tokens: int) -> None:
        self.writer, self.arrived, self.left = writer, arrived, tokens
        self.done = asyncio.get_running_loop().create_future()


class TimedModel:
    def __init__(self, tokens: int, delay: float) -> None:
        self.tokens, self.delay = tokens, delay
        self.streams: list[Stream] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answers, one after another, until the client closes the connection."""
        try:
            while True:
                await self.answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        arrived = time.time()
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        writer.write(HEAD)
        stream = Stream(writer, arrived, self.tokens)
        # The first token at once, with the arrival: the model's own time to first token
        # is ~0, so what a page measures on top is chatapp's.
        writer.write(chunked(TEXT % f" r{arrived:.4f} t{time.time():.4f}"))
        stream.left -= 1
        self.streams.append(stream)
        await stream.done
        await writer.drain()
        if writer.is_closing():  # the client went away mid-answer (a Stop)
            raise ConnectionError

    async def tick(self) -> None:
        """One clock for every stream: a token each, every `delay` seconds."""
        while True:
            await asyncio.sleep(self.delay)
            piece = chunked(TEXT % f" t{time.time():.4f}")
            still = []
            for stream in self.streams:
                if stream.writer.is_closing():
                    stream.done.set_result(None)
                    continue
                stream.writer.write(piece)
                stream.left -= 1
                if stream.left <= 0:
                    stream.writer.write(chunked(END % (self.tokens, self.tokens + 1)) + LAST_CHUNK)
                    stream.done.set_result(None)
                else:
                    still.append(stream)
            self.streams = still


async def serve(port: int, tokens: int, delay: float) -> None:
    model = TimedModel(tokens, delay)
    server = await asyncio.start_server(model.handle, "127.0.0.1", port, backlog=4096)
    ticker = asyncio.create_task(model.tick())
    async with server:
        await server.serve_forever()
    ticker.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.02)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.tokens, args.delay))
