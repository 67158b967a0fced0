"""Safe by default: DEBUG is off unless asked for, a server with DEBUG off refuses to start
without a key of its own, and a request for a foreign host gets no debug page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def settings_of(**env: str) -> subprocess.CompletedProcess[str]:
    """Import the settings in a clean process with only `env` set."""
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    clean |= {"DJANGO_SETTINGS_MODULE": "chatapp.settings", **env}
    code = "from django.conf import settings; print('DEBUG', settings.DEBUG)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True
    )


def test_debug_is_off_unless_asked_for():
    assert settings_of(SECRET_KEY="a-key-of-our-own-" + "x" * 40).stdout.strip() == "DEBUG False"
    assert settings_of(DEBUG="true").stdout.strip() == "DEBUG True"


@pytest.mark.parametrize(
    "key", [None, "dev-only-insecure-key"], ids=["no key", "the published key"]
)
def test_with_debug_off_there_is_no_start_without_a_key_of_our_own(key):
    done = settings_of(**({"SECRET_KEY": key} if key else {}))
    assert done.returncode != 0
    assert "DEBUG is off, so chatapp needs a SECRET_KEY of its own" in done.stderr


def test_a_server_started_plainly_shows_a_foreign_host_no_debug_page():
    """Started without DEBUG in its environment, as most servers are."""
    from tests.processes import test_database_url
    from tests.web.test_lifecycle import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    env |= {
        "DJANGO_SETTINGS_MODULE": "chatapp.settings",
        "SECRET_KEY": "a-key-of-our-own-" + "x" * 40,
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": "",
        "OPENAI_BASE_URL": "http://user:hunter2@model.internal/v1",
    }
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        [*command, "chatapp.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/", headers={"Host": "evil.example"}
                )
                urllib.request.urlopen(request, timeout=5)
                status, page = 200, ""
                break
            except urllib.error.HTTPError as refused:
                status, page = refused.code, refused.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert status == 400
    assert "hunter2" not in page and "OPENAI_BASE_URL" not in page and "Traceback" not in page
