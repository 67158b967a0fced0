"""The autouse guard: a test that reaches for the network fails, even if the error is caught."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import NetworkBlocked


def test_connecting_to_a_remote_host_is_refused(block_network):
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("api.openai.com", 443), timeout=1)
    assert block_network == ["'api.openai.com'"]
    block_network.clear()  # this test meant to try; any other test that tries fails


def test_a_swallowed_attempt_still_fails_the_test(pytester):
    pytester.makeconftest("from tests.conftest import block_network  # noqa: F401")
    pytester.makepyfile(
        """
        import socket

        def test_sneaky():
            try:
                socket.create_connection(("203.0.113.7", 443), timeout=1)
            except OSError:
                pass
        """
    )
    result = pytester.runpytest_inprocess(
        "-p",
        "no:django",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*tried to reach the network*203.0.113.7*"])


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    with socket.create_connection(server.getsockname(), timeout=1):
        pass
    server.close()
