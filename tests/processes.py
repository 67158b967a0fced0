"""Helpers for tests that run chatapp in a real subprocess (a server killed with SIGTERM, the
terminal chat interrupted with Ctrl-C): the subprocess uses this session's test database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def test_database_url() -> str:
    """DATABASE_URL of the database these tests use (a file or a server, never memory)."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    user = quote(config.get("USER") or "")
    password = f":{quote(config['PASSWORD'])}" if config.get("PASSWORD") else ""
    host = config.get("HOST") or "127.0.0.1"
    port = f":{config['PORT']}" if config.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{config['NAME']}"


def environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


class Output:
    """Everything a subprocess writes to stdout and stderr, read as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.text = ""
        self.lock = threading.Lock()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for piece in iter(lambda: stream.read(1), ""):
            with self.lock:
                self.text += piece

    def wait_for_count(self, needle: str, count: int, timeout: float = 20) -> None:
        """Wait until `needle` has appeared `count` times (stdout and stderr interleave in
        no fixed order, so positions across them mean little)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.text.count(needle) >= count:
                    return
            time.sleep(0.02)
        raise AssertionError(f"{needle!r} did not appear {count} times in:\n{self.text}")

    def wait_for(self, needle: str, timeout: float = 20, after: int = 0) -> int:
        """Wait until `needle` appears (after position `after`); its position."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = self.text.find(needle, after)
            if found >= 0:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{needle!r} did not appear in:\n{self.text}")


def manage(*arguments: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
