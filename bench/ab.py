"""Before and after, side by side: two versions of chatapp served at once, both on core 0,
measured in alternating rounds (before-after, after-before, ...), so that each pair of
figures sees the same machine within seconds. On this 2-core machine the speed of the day
moves the load benchmark's figures by more than most changes do; a pair of servers taking
turns does not carry that drift.

    git worktree add /tmp/before <commit>       # the version to compare with
    .venv/bin/python bench/ab.py /tmp/before .  # 4 rounds each of 300 answers at once
    .venv/bin/python bench/ab.py /tmp/before . --answers 100 --spread 1  # 100 starting in 1 s

Each round: N pages (one thread each, on the embedded defaults) send at once, or evenly over
`--spread` seconds; printed: the p99 lag, the server's CPU per answer and the time to first
token (p50, the model's own time taken out), each round and their medians. The same fake
model (this checkout's) answers both. Figures, not assertions; 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="a checkout of the version to compare with")
    parser.add_argument("after", type=Path, help="a checkout of the version to measure")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each")
    parser.add_argument("--answers", type=int, default=300, help="pages sending each round")
    parser.add_argument("--spread", type=float, default=0.0, help="seconds to send them over")
    parser.add_argument("--tokens", type=int, default=load.TOKENS)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    os.sched_setaffinity(0, {1})  # the pages and the model on core 1
    model_port = load.free_port()
    model = [load.PYTHON, str(load.ROOT / "bench" / "timed_model.py"), "--port", str(model_port)]
    model += ["--tokens", str(args.tokens)]
    found: dict[str, list[dict]] = {"before": [], "after": []}
    with (
        tempfile.TemporaryDirectory() as folder,
        load.started(model, model_port, "the fake model", dict(os.environ), core=1),
        ExitStack() as stack,
    ):
        model_url = f"http://127.0.0.1:{model_port}/v1"
        servers = {}
        for label in found:
            root = getattr(args, label).resolve()
            env = load.environment("embedded", model_url, f"sqlite:///{folder}/{label}.sqlite3")
            pages = load.seed(env, "prepare", str(args.answers), root=root)
            port = load.free_port()
            command = load.daphne("127.0.0.1", port)
            server = stack.enter_context(load.started(command, port, "chatapp", env, 0, root))
            servers[label] = (server, port, pages)
        for index in range(args.rounds):
            for label in ("before", "after") if index % 2 == 0 else ("after", "before"):
                server, port, pages = servers[label]
                round_pages = [load.thread_page(port, p) for p in pages]
                measured = load.measured([server], round_pages, 60, args.spread)
                figures = in_ms(measured, args.tokens)
                found[label].append(figures)
                print(f"{label:<6} {line(figures)}", flush=True)
    print(f"\nmedians of {args.rounds} rounds of {args.answers} answers each")
    for label, rounds in found.items():
        medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        print(f"{label:<6} {line(medians)}")


def in_ms(figures: dict, tokens: int) -> dict[str, float]:
    """What a round of bench/load.py measures, as this comparison prints it (and the tokens
    that never arrived)."""
    return {
        "p99": figures["p99"] * 1000,
        "cpu": figures["cpu_ms_per_answer"],
        "ttft": figures["ttft_p50"] * 1000,
        "lost": figures["pages"] * tokens - figures["tokens"],
    }


def line(figures: dict[str, float]) -> str:
    return (
        f"p99 lag {figures['p99']:7.1f} ms   CPU {figures['cpu']:5.1f} ms/answer   "
        f"TTFT p50 {figures['ttft']:7.1f} ms   lost {figures['lost']:.0f} tokens"
    )


if __name__ == "__main__":
    main()
