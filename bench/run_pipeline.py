"""The whole way from a model to a page, many runs at once: the engine, the broadcaster, the
channel layer (in memory; Redis with REDIS_URL) and a subscriber per thread standing in for
the websocket. Baseline, measured in the same run: the same streams read straight from the
provider, with nothing of chatapp after it.

    make bench
    .venv/bin/python bench/run_pipeline.py --runs 60 --delay 0.02

Lag of a token = when a page would have it - when the server wrote it (the stream's first
token time + index * delay). Also printed: text frames per message (batching) and database
the wall time of all runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
WORKDIR = Path(tempfile.mkdtemp(prefix="chatapp-bench-"))
os.environ.setdefault("DATABASE_URL", f"sqlite:///{WORKDIR / 'db.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapp.settings")

import django  # noqa: E402

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from stream_lag import PROMPT, free_port, lags, ours, start_server  # noqa: E402

from chatapp import services  # noqa: E402
from chatapp.models import Assistant, Thread  # noqa: E402
from chatapp.web import broadcast  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[int(share * (len(ordered) - 1))]


def report(name: str, lags: list[float], extra: str = "") -> dict[str, float]:
    figures = {"p50": statistics.median(lags), "p99": percentile(lags, 0.99), "max": max(lags)}
    print(
        f"{name:<34} lag p50 {figures['p50'] * 1000:7.1f} ms  p99 {figures['p99'] * 1000:7.1f} ms"
        f"  max {figures['max'] * 1000:7.1f} ms  {extra}"
    )
    return figures


def token_lags(frames: list[tuple[float, int, str]], delay: float) -> list[float]:
    """Each frame delivers words ending at some index: their lag against the schedule."""
    result, words, first = [], 0, None
    for arrived, _offset, text in frames:
        count = len(text.split())
        if first is None:
            first = arrived
        words += count
        result.extend([max(0.0, arrived - (first + (words - 1) * delay))] * count)
    return result


async def subscribe(group: str, results: dict[str, list[tuple[float, int, str]]]) -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    frames = results.setdefault(group, [])
    while True:
        message = await layer.receive(channel)
        if message["type"] == "chat.text":
            frames.append((time.monotonic(), message["offset"], message["text"]))
        elif 'data-running="false"' in message.get("html", ""):
            return


def setup(runs: int) -> list[Thread]:
    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="bench")
    bot, _ = Assistant.objects.update_or_create(
        slug="bench",
        defaults={
            "name": "Bench",
            "provider": "openai",
            "model": "offline",
            "instructions": "You are a bench.",
        },
    )
    return [services.start_thread(bot, user=user) for _ in range(runs)]


async def through_chatapp(threads: list[Thread], delay: float) -> None:
    results: dict[str, list[tuple[float, int, str]]] = {}
    listeners = [
        asyncio.create_task(subscribe(broadcast.group_name(t.pk), results)) for t in threads
    ]
    await asyncio.sleep(0.1)
    send = sync_to_async(services.send_message)
    queued = [(await send(thread, PROMPT))[1] for thread in threads]
    started = time.monotonic()
    for run in queued:  # all at once, as many users would
        broadcast.start(run.pk, run.thread_id)
    await asyncio.gather(*listeners)
    wall = time.monotonic() - started
    lags = [lag for frames in results.values() for lag in token_lags(frames, delay)]
    frames_per_message = statistics.mean(len(f) for f in results.values())
    report(
        "chatapp: engine → layer → page",
        lags,
        f"{frames_per_message:.1f} text frames/message, wall {wall:.2f} s",
    )


async def main(runs: int, delay: float) -> None:
    port = free_port()
    server = start_server(port, delay)
    url = f"http://127.0.0.1:{port}/v1"
    from django.conf import settings

    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = url, "bench"
    try:
        threads = await sync_to_async(setup)(runs)
        print(
            f"{runs} concurrent runs, {1 / delay:.0f} tokens/s each, channel layer: "
            f"{settings.CHANNEL_LAYERS['default']['BACKEND'].rsplit('.', 1)[-1]}"
        )
        baseline = await asyncio.gather(*(ours(url) for _ in range(runs)))
        report(
            "baseline: the provider alone",
            [lag for arrivals in baseline for lag in lags(arrivals, delay)],
        )
        await through_chatapp(threads, delay)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=120)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between tokens")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.delay))
