"""Fixtures shared by every test.

The network guard is autouse: a test that tries to reach anything but this machine (a real
model provider, say) fails, even when the code under test swallows the connection error.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

# The support modules of the split test files hold fixtures and asserting helpers: rewrite
# their asserts as pytest does a test module's (and before the test modules import them).
pytest.register_assert_rewrite("tests.admin.support", "tests.definitions.support")


class NetworkBlocked(OSError):
    pass


def _is_local(address: Any) -> bool:
    if not isinstance(address, tuple):  # a unix socket path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a name: only loopback addresses are allowed through


@pytest.fixture(autouse=True)
def block_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refuse(target: Any) -> NetworkBlocked:
        attempts.append(repr(target))
        return NetworkBlocked(f"tests may not reach the network: {target!r}")

    def connect(self: socket.socket, address: Any) -> None:
        if not _is_local(address):
            raise refuse(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _is_local(address):
            raise refuse(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_local((name, 0)):
            raise refuse(name)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    if attempts:
        pytest.fail(f"The test tried to reach the network: {', '.join(attempts)}")


@pytest.fixture(autouse=True)
def _fast_offline_model(settings: Any) -> None:
    """The offline model streams instantly and the default provider is always offline in
    tests, whatever the developer's environment says."""
    settings.OFFLINE_MODEL_DELAY = 0
    settings.CHATAPP_DEFAULT_PROVIDER = "offline"
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = None
    # A deliberately slow hash costs a second per user created; tests need no protection.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- building blocks for engine tests ---------------------------------------------------------


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("ada", password="pw-ada-123")


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def script() -> Iterator[Any]:
    """`script(Say(...), ...)` installs a ScriptedProvider named "scripted" and returns it."""
    from chatapp.providers import registry
    from chatapp.providers.scripted import ScriptedProvider

    installed: list[str] = []

    def install(*turns: Any, name: str = "scripted") -> ScriptedProvider:
        provider = ScriptedProvider(list(turns), name=name)
        registry.register(provider, replace=True)
        installed.append(name)
        return provider

    yield install
    for name in installed:
        registry.unregister(name)


@pytest.fixture
def every_query(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement run while the test runs, from any thread: a run does its
    database work on a pool of threads, which CaptureQueriesContext (one connection) misses."""
    from django.db.backends.utils import CursorWrapper

    seen: list[str] = []
    lock = threading.Lock()

    def recording(real: Any) -> Any:
        def execute(self: Any, sql: str, *rest: Any) -> Any:
            with lock:
                seen.append(sql)
            return real(self, sql, *rest)

        return execute

    for name in ("_execute", "_executemany"):
        monkeypatch.setattr(CursorWrapper, name, recording(getattr(CursorWrapper, name)))
    return seen


@pytest.fixture
def tools() -> Iterator[Any]:
    """`tools(spec, ...)` registers tools in the project's registry for one test."""
    from assistants_registry.registry import registry

    added: list[str] = []

    def register(*specs: Any) -> None:
        registry.register(*specs)
        added.extend(spec.name for spec in specs)

    yield register
    for name in added:
        registry.unregister(name)


@pytest.fixture
def site_editor(db: Any, user: Any) -> None:
    """The site-editor demo, and `user` (ada) allowed to use it as the demo user is."""
    from django.core.management import call_command

    from tests.factories import SITE_EDITOR, grant

    call_command("seed_demo", stdout=io.StringIO())
    grant(user, *SITE_EDITOR)


@pytest.fixture(autouse=True)
def _forget_cached_rules() -> None:
    """Rules are cached per version of the assistants; tests reuse ids across databases."""
    from chatapp.runs import turns

    turns._rules.clear()


@pytest.fixture(autouse=True)
def _close_connections_of_the_sync_thread() -> Iterator[None]:
    """Async tests reach the database through asgiref's one shared sync thread; close its
    connection after each test so PostgreSQL can drop the test database at the end."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
    from chatapp.db import close_all

    close_all()
