"""End-to-end load: how many answers one chatapp process streams at once, measured against a
bare Channels relay in the same run, on a 2-core machine.

    make bench                                  # the whole ladder, every configuration
    .venv/bin/python bench/load.py --ladder 50,100 --configs embedded

The server (Daphne) is pinned to core 0; the fake model and the pages to core 1. Each page is
a real websocket client logged in with a session, on a thread of its own; all send at once,
and every token's lag is measured from the moment the model wrote it. Configurations:
`relay` (the baseline), `embedded` (SQLite + in-memory layer), `pg-redis` (PostgreSQL +
Redis, one process), `pg-redis-2` (two processes behind no proxy, pages split between them).

The relay is measured right before each rung it is compared with (same N, seconds apart), not
once at the start: over the minutes a whole run takes, the machine's own speed drifts, and a
ratio is only as good as the closeness of its two figures. `--repeat K` runs everything K
times and ends with each ratio's median and range.
Figures, not assertions: bounded loads, 127.0.0.1 only, every process stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from pages import Page, connect, percentile, round_of  # noqa: E402

from chatapp.management.commands.serve import daphne  # noqa: E402  (as `make serve` runs it)

PYTHON = sys.executable
PG = "postgres://postgres@127.0.0.1:5432/chatapp_bench"
REDIS = "redis://127.0.0.1:6379/7"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} did not start.")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port}.")


# BENCH_PROFILE=<file>: py-spy (pip install py-spy) records the chatapp server's stacks.
PROFILE = os.environ.get("BENCH_PROFILE", "")


def log_file(what: str, port: int) -> IO[str]:
    """Each server's log, kept in the temporary folder for when a figure looks wrong."""
    name = f"bench-{what.replace(' ', '-')}-{port}.log"
    return open(Path(tempfile.gettempdir()) / name, "w")


@contextmanager
def started(
    command: list[str], port: int, what: str, env: dict[str, str], core: int, root: Path = ROOT
):
    if PROFILE and what == "chatapp":
        command = [
            str(Path(PYTHON).parent / "py-spy"),
            "record",
            "-r",
            "200",
            "--format",
            "raw",
            "--gil",  # only the thread holding the GIL: what the one core is doing
            "-o",
            PROFILE,
            "--",
            *command,
        ]
    process = subprocess.Popen(
        ["taskset", "-c", str(core), *command],
        cwd=root,  # the version of chatapp it runs (bench/ab.py runs two)
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file(what, port),
    )
    try:
        wait_for_port(port, process, what)
        yield process
    finally:
        process.send_signal(2 if PROFILE else 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def environment(config: str, model_url: str, database: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatapp.settings",
        "DATABASE_URL": database,
        "OPENAI_BASE_URL": model_url,
        "OPENAI_API_KEY": "bench",
        "CHATAPP_DEFAULT_PROVIDER": "openai",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
        "CHATAPP_MODEL_IDLE": "120",
    }
    env.pop("REDIS_URL", None)
    if config.startswith("pg-redis"):
        env["REDIS_URL"] = REDIS
    return env


def seed(env: dict[str, str], *arguments: str, root: Path = ROOT) -> object:
    done = subprocess.run(
        [PYTHON, str(root / "bench" / "seed.py"), *arguments],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def fresh_database(config: str, folder: Path) -> str:
    if not config.startswith("pg-redis"):
        return f"sqlite:///{folder / f'{config}.sqlite3'}"
    subprocess.run(
        ["redis-cli", "-n", REDIS.rsplit("/", 1)[1], "flushdb"], check=True, capture_output=True
    )
    for sql in ("DROP DATABASE IF EXISTS chatapp_bench", "CREATE DATABASE chatapp_bench"):
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql],
            check=True,
            capture_output=True,
        )
    return PG


class Relay:
    """The baseline: one relay process for the whole run, idle while chatapp is measured."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process, self.port = process, port

    def rung(self, n: int, deadline: float) -> dict:
        pages = [relay_page(self.port) for _ in range(n)]
        return measured([self.process], pages, deadline) | {"config": "relay", "n": n}

    def first_token(self) -> dict:
        return first_token_overhead(lambda _: relay_page(self.port)) | {"config": "relay"}


@contextmanager
def relay_started(model_url: str, folder: Path):
    env = environment("relay", model_url, fresh_database("relay", folder))
    env["PYTHONPATH"] = str(ROOT / "bench")
    port = free_port()
    with started(daphne("127.0.0.1", port, "relay:application"), port, "the relay", env, 0) as p:
        yield Relay(p, port)


DEADLINE = 60.0


def measure_config(
    config: str, ladder: list[int], tokens: int, model_url: str, folder: Path, relay: Relay | None
) -> list[dict]:
    """Each rung of `config`'s ladder, each right after the relay's rung of the same N."""
    env = environment(config, model_url, fresh_database(config, folder))
    pages = seed(env, "prepare", str(max(ladder)))
    servers = 2 if config.endswith("-2") else 1
    ports = [free_port() for _ in range(servers)]
    results = []
    with ExitStack() as stack:
        servers_started = [
            stack.enter_context(
                started(
                    daphne("127.0.0.1", port),
                    port,
                    "chatapp",
                    env,
                    core=index,  # one process on core 0; a second on core 1, beside the pages
                )
            )
            for index, port in enumerate(ports)
        ]
        for n in ladder:
            if relay:
                results.append(relay.rung(n, DEADLINE))
            round_pages = [thread_page(ports[i % servers], p) for i, p in enumerate(pages[:n])]
            figures = measured(servers_started, round_pages, DEADLINE)
            saved = seed(env, "verify")
            figures["saved"] = sum(1 for p in pages[:n] if saved.get(p["thread"]) == tokens)
            results.append(figures | {"config": config, "n": n})
        if config == "embedded":
            if relay:
                results.append(relay.first_token())
            first = first_token_overhead(lambda i: thread_page(ports[0], pages[i]))
            results.append(first | {"config": config})
    return results


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """User + system time the server processes have used so far."""
    total = 0
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def services_ticks() -> dict[int, int]:
    """Clock ticks used so far by each PostgreSQL and Redis process on the machine. They are
    not pinned: what they use of core 0 is taken from the server."""
    ticks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if b"postgres" in command or b"redis-server" in command:
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return ticks


def services_seconds_since(before: dict[int, int]) -> float:
    """CPU time PostgreSQL and Redis used since `before` (a process that ended meanwhile is
    not counted: the database's connections outlive a round)."""
    after = services_ticks()
    used = sum(ticks - before.get(pid, 0) for pid, ticks in after.items())
    return used / os.sysconf("SC_CLK_TCK")


def measured(
    processes: list[subprocess.Popen[bytes]], pages: list[Page], deadline: float, spread: float = 0
) -> dict:
    """A round (the pages send at once, or evenly over `spread` seconds), with the server CPU
    its pages' connecting cost, and then their answers (and what PostgreSQL and Redis spent on
    those)."""
    marks = [cpu_seconds(processes)]
    services: dict[int, int] = {}

    def connected() -> None:
        marks.append(cpu_seconds(processes))
        services.update(services_ticks())

    figures = asyncio.run(round_of(pages, deadline, connected, spread))
    figures["cpu_ms_per_connect"] = 1000 * (marks[1] - marks[0]) / len(pages)
    figures["cpu_ms_per_answer"] = 1000 * (cpu_seconds(processes) - marks[1]) / len(pages)
    figures["services_ms_per_answer"] = 1000 * services_seconds_since(services) / len(pages)
    return figures


def resident_kib(process: subprocess.Popen[bytes]) -> int:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def idle_memory(count: int, model_url: str, folder: Path) -> dict:
    """Server memory per idle page: `count` pages connected and doing nothing."""
    env = environment("embedded", model_url, fresh_database("idle", folder))
    pages = seed(env, "prepare", str(count))
    port = free_port()
    command = daphne("127.0.0.1", port)
    with started(command, port, "chatapp", env, core=0) as server:

        async def hold() -> tuple[int, int]:
            sockets = [await connect(thread_page(port, pages[0]))]  # loads what every page needs
            await asyncio.sleep(1)
            before = resident_kib(server)
            for start in range(1, count, 100):  # a hundred at a time: busy, not a flood
                batch = pages[start : start + 100]
                sockets += await asyncio.gather(*(connect(thread_page(port, p)) for p in batch))
            await asyncio.sleep(2)
            after = resident_kib(server)
            await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
            return before, after

        before, after = asyncio.run(hold())
    return {"idle_pages": count, "kib_per_page": (after - before) / (count - 1)}


def thread_page(port: int, seeded: dict) -> Page:
    """The page of a thread `bench/seed.py` made, on the server at `port`."""
    return Page(f"ws://127.0.0.1:{port}/ws/threads/{seeded['thread']}/", seeded["cookie"])


def relay_page(port: int) -> Page:
    return Page(f"ws://127.0.0.1:{port}/ws/relay/", "", relay=True)


def first_token_overhead(page: Callable[[int], Page]) -> dict:
    """The server's own time to the first token (the model's is taken out): one user alone,
    ten times in a row; then 100 users sending at the same instant; then 100 users starting
    in the same second, one every 10 ms. `page(i)`: the i-th user's page."""

    async def alone() -> list[float]:
        user, found = page(0), []
        for _ in range(10):
            user.tokens = 0
            await round_of([user], 60)
            found.append(user.first_token)
        return found

    def hundred(spread: float) -> float:
        users = [page(i) for i in range(100)]
        asyncio.run(round_of(users, 60, spread=spread))
        return percentile([p.first_token for p in users if p.tokens], 0.5)

    one = asyncio.run(alone())
    return {
        "ttft_one": percentile(one, 0.5),
        "ttft_hundred": hundred(0.0),
        "ttft_hundred_in_a_second": hundred(1.0),
    }


TOKENS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", default="50,100,200,300")
    parser.add_argument("--configs", default="relay,embedded,pg-redis,pg-redis-2")
    parser.add_argument("--tokens", type=int, default=TOKENS)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--idle", type=int, default=2000, help="idle pages (0: skip)")
    parser.add_argument("--repeat", type=int, default=1, help="run everything K times")
    args = parser.parse_args()
    ladder = [int(n) for n in args.ladder.split(",")]
    configs = args.configs.split(",")
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    os.sched_setaffinity(0, {1})  # the pages, and everything started from here, on core 1
    model_port = free_port()
    model = [PYTHON, str(ROOT / "bench" / "timed_model.py"), "--port", str(model_port)]
    model += ["--tokens", str(args.tokens), "--delay", str(args.delay)]
    rows: list[dict] = []
    with (
        tempfile.TemporaryDirectory() as folder,
        started(model, model_port, "the fake model", dict(os.environ), core=1),
    ):
        model_url = f"http://127.0.0.1:{model_port}/v1"
        with ExitStack() as stack:
            relay = None
            if "relay" in configs:
                relay = stack.enter_context(relay_started(model_url, Path(folder)))
            for _ in range(args.repeat):
                for config in configs:
                    if config != "relay":
                        rows += measure_config(
                            config, ladder, args.tokens, model_url, Path(folder), relay
                        )
                if relay and configs == ["relay"]:
                    rows += [relay.rung(n, DEADLINE) for n in ladder] + [relay.first_token()]
        if args.idle:
            rows.append(idle_memory(args.idle, model_url, Path(folder)))
    report(rows, args.tokens)


def report(rows: list[dict], tokens: int) -> None:
    print(f"\nanswers of {tokens} tokens at 50 tokens/s; lag = page received - model wrote")
    print("TTFT: the server's own time to the first token (the model's taken out), all N at once")
    print("connect p99: all N pages open at once (a reconnect storm), until each shows its thread")
    print("p99/relay: against the relay's rung of the same N, measured just before")
    print(
        f"{'configuration':<12} {'N':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'lost tok':>8} {'dropped':>7} {'saved':>6} {'p99/relay':>9} {'CPU ms/answer':>13} "
        f"{'TTFT p50 ms':>11} {'CPU ms/connect':>14} {'connect p99 ms':>14} "
        f"{'PG+Redis ms/answer':>18}"
    )
    relay: dict[int, dict] = {}  # N -> the relay's latest rung
    ratios: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        if "n" not in row:
            continue
        config = row["config"]
        lost = row["n"] * tokens - row["tokens"]
        ratio = ""
        if config == "relay":
            relay[row["n"]] = row
        elif base := relay.get(row["n"]):
            ratios.setdefault((config, row["n"]), []).append(row["p99"] / base["p99"])
            ratio = f"{ratios[config, row['n']][-1]:.2f}"
        # SQLite works inside the server's process; PostgreSQL and Redis outside it
        services = f"{row['services_ms_per_answer']:.1f}" if config.startswith("pg") else ""
        print(
            f"{config:<12} {row['n']:>4} {row['p50'] * 1000:8.1f} {row['p99'] * 1000:8.1f} "
            f"{row['max'] * 1000:8.1f} {lost:>8} {row['dropped']:>7} "
            f"{row.get('saved', ''):>6} {ratio:>9} {row['cpu_ms_per_answer']:13.1f} "
            f"{row['ttft_p50'] * 1000:11.1f} {row['cpu_ms_per_connect']:14.1f} "
            f"{row['connect_p99'] * 1000:14.1f} {services:>18}"
        )
    for row in rows:
        if "kib_per_page" in row:
            print(
                f"memory: {row['kib_per_page']:.1f} KiB of server memory per idle page "
                f"({row['idle_pages']} pages connected)"
            )
        if "ttft_one" in row:
            print(
                f"{row['config']}: the server's own time to first token, p50: one user "
                f"{row['ttft_one'] * 1000:.1f} ms; 100 sending at once "
                f"{row['ttft_hundred'] * 1000:.1f} ms; 100 starting in one second "
                f"(one every 10 ms) {row['ttft_hundred_in_a_second'] * 1000:.1f} ms"
            )
    for (config, n), found in ratios.items():
        if len(found) > 1:
            print(
                f"{config} at N={n}, p99/relay over {len(found)} pairs: median "
                f"{statistics.median(found):.2f}, from {min(found):.2f} to {max(found):.2f}"
            )


if __name__ == "__main__":
    main()
