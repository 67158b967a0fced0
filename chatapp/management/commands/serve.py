"""Serve chatapp as in production: Daphne, `DEBUG` off, one or several processes.

    manage.py serve                        # one process on 127.0.0.1:8000
    manage.py serve --processes 2          # two processes, on ports 8000 and 8001

Each process listens on a port of its own (the next one up); a proxy in front spreads pages
over them and upgrades websockets (README, "Deploying"). Several processes need REDIS_URL:
it is how a page on one process sees a run on another. SIGTERM or SIGINT stops them all,
each saving its runs as interrupted first.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# Daphne drops a websocket whose handshake the application has not accepted within 5 s. Pages
# that connect all at once (after a restart, say) queue for the database past that: they must
# wait, not be dropped.
HANDSHAKE_SECONDS = 60


def daphne(host: str, port: int, application: str = "chatapp.asgi:application") -> list[str]:
    """The command of one server process (the load benchmark starts its servers with it)."""
    return [
        sys.executable,
        "-m",
        "daphne",
        "--websocket_connect_timeout",
        str(HANDSHAKE_SECONDS),
        "-b",
        host,
        "-p",
        str(port),
        application,
    ]


class Command(BaseCommand):
    help = "Serve chatapp with Daphne, DEBUG off, in one or several processes."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000, help="the first process's port")
        parser.add_argument("--processes", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        count, host, port = options["processes"], options["host"], options["port"]
        if settings.DEBUG:
            raise CommandError("DEBUG is on: production serving needs DEBUG=false.")
        if count < 1:
            raise CommandError("--processes must be 1 or more.")
        if count > 1 and not settings.REDIS_URL:
            raise CommandError(
                "Several processes need REDIS_URL: it is how a page on one process sees a run "
                "on another."
            )
        ports = [port + index for index in range(count)]
        servers = [subprocess.Popen(daphne(host, each)) for each in ports]
        self.stdout.write(
            f"Serving on {', '.join(f'http://{host}:{each}/' for each in ports)} "
            f"({'one process' if count == 1 else f'{count} processes'}). Ctrl-C stops."
        )
        stopping: list[int] = []  # the signals that asked us to stop

        def stop_all() -> None:
            for server in servers:
                if server.poll() is None:
                    server.send_signal(signal.SIGTERM)

        def asked_to_stop(signum: int, frame: object) -> None:
            stopping.append(signum)
            stop_all()

        signal.signal(signal.SIGTERM, asked_to_stop)
        signal.signal(signal.SIGINT, asked_to_stop)
        while not stopping and all(server.poll() is None for server in servers):
            time.sleep(0.2)
        stop_all()  # one process ended by itself (it could not listen, say): the others go too
        for server in servers:
            server.wait()
        if not stopping:
            raise CommandError("A server process ended by itself; all were stopped.")
