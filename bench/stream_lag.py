"""How late do streamed tokens reach us? Ours (raw SSE lines decoded with json) against a
baseline measured in the same run (the openai client's typed stream, a pydantic object per
chunk). Both read the same offline model, served over HTTP by another process at a fixed
token rate, with many streams at once.

    make bench                      # 120 streams of 50 tokens/s
    .venv/bin/python bench/stream_lag.py --streams 60 --delay 0.02

Lag of a token = when it arrived - when the server wrote it, estimated as the stream's first
token time + index * delay. Figures, not assertions: read them, compare the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapp.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")

import django  # noqa: E402

django.setup()

import httpx2  # noqa: E402
import openai  # noqa: E402

from chatapp.providers import openai as openai_provider  # noqa: E402
from chatapp.providers.base import ChatMessage, ProviderRequest, TextChunk  # noqa: E402
from chatapp.providers.openai import OpenAIProvider  # noqa: E402

PROMPT = " ".join(f"word{i}" for i in range(40))  # the offline model echoes it: ~50 tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, delay: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(ROOT / "manage.py"), "serve_offline_model"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--delay", str(delay)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("The offline model server did not start.")


def lags(arrivals: list[float], delay: float) -> list[float]:
    first = arrivals[0]
    return [max(0.0, t - (first + i * delay)) for i, t in enumerate(arrivals)]


async def ours(url: str, key: str = "bench") -> list[float]:
    provider = OpenAIProvider(base_url=url, api_key=key, max_retries=0)
    request = ProviderRequest(
        model="offline", instructions="You are a bench.", messages=(ChatMessage("user", PROMPT),)
    )
    return [time.monotonic() async for e in provider.stream(request) if isinstance(e, TextChunk)]


def typed_baseline(client: openai.AsyncOpenAI) -> Callable[[str], Awaitable[list[float]]]:
    async def run(url: str) -> list[float]:
        stream = await client.chat.completions.create(
            model="offline",
            messages=[
                {"role": "system", "content": "You are a bench."},
                {"role": "user", "content": PROMPT},
            ],
            stream=True,
        )
        arrivals = []
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic())
        return arrivals

    return run


async def measure(
    name: str, stream: Callable[[str], Awaitable[list[float]]], url: str, n: int, delay: float
) -> dict[str, float]:
    cpu, wall = time.process_time(), time.monotonic()
    results = await asyncio.gather(*(stream(url) for _ in range(n)))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    all_lags = sorted(lag for arrivals in results for lag in lags(arrivals, delay))
    tokens = sum(len(a) for a in results)
    figures = {
        "p50": statistics.median(all_lags),
        "p99": all_lags[int(0.99 * (len(all_lags) - 1))],
        "max": all_lags[-1],
        "cpu": cpu,
        "tokens": tokens,
        "wall": wall,
    }
    print(
        f"{name:<28} tokens {tokens:>6}  lag p50 {figures['p50'] * 1000:7.1f} ms  "
        f"p99 {figures['p99'] * 1000:7.1f} ms  max {figures['max'] * 1000:7.1f} ms  "
        f"client CPU {cpu:5.2f} s  wall {wall:5.2f} s"
    )
    return figures


async def main(streams: int, delay: float) -> None:
    port = free_port()
    server = start_server(port, delay)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        client = openai.AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)
        print(
            f"{streams} concurrent streams, {1 / delay:.0f} tokens/s each, "
            "the server in its own process"
        )
        await measure("warm-up", ours, url, 4, delay)
        baseline = await measure(
            "baseline: typed stream", typed_baseline(client), url, streams, delay
        )
        # The same reader with its client on httpx2's own sockets (anyio), the baseline for
        # chatapp/providers/sockets.py: a client made under the patch keeps that transport.
        stock = mock.patch.object(
            openai_provider,
            "asyncio_transport",
            lambda limits: httpx2.AsyncHTTPTransport(limits=limits),
        )
        with stock:
            anyio = await measure(
                "baseline: on anyio sockets", lambda u: ours(u, "bench-anyio"), url, streams, delay
            )
        lean = await measure("chatapp: SSE lines + json", ours, url, streams, delay)
        for name, other in (("typed stream", baseline), ("anyio sockets", anyio)):
            # A lag under a millisecond makes no ratio worth printing.
            lag = f"{lean['p99'] / other['p99']:.2f}" if other["p99"] >= 0.001 else "-"
            print(
                f"ratio chatapp/{name}: p99 lag {lag}  "
                f"client CPU {lean['cpu'] / max(other['cpu'], 1e-9):.2f}"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=120)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between tokens")
    args = parser.parse_args()
    asyncio.run(main(args.streams, args.delay))
