"""The sandbox, attacked for real: each escape is tried by code run in bubblewrap, ends in a
plain-words result, leaves nothing running, and the next run still works."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from chatapp.sandbox import bubblewrap
from chatapp.sandbox.bubblewrap import File, Limits, run

TIGHT = Limits(cpu_seconds=2, wall_seconds=6, memory_mb=512, processes=16, output_chars=2000)
SETTINGS_FILE = Path(settings.BASE_DIR, "chatapp", "settings.py")


def sandboxed_processes() -> list[int]:
    """Processes still running as one of the sandbox's uids (as root) — there must be none."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                uid = entry.stat().st_uid
            except FileNotFoundError:
                continue
            if bubblewrap.UID_BASE <= uid < bubblewrap.UID_BASE + bubblewrap.UIDS:
                found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    # A killed sandbox's processes go with its pid namespace, a moment after bwrap.
    deadline = time.monotonic() + 3
    while sandboxed_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandboxed_processes() == []
    healthy = asyncio.run(run("print(6 * 7)", limits=TIGHT))
    assert healthy.ok and healthy.stdout.strip() == "42"  # the sandbox still works after


async def test_a_plot_and_the_threads_files():
    code = (
        "import numpy as np, matplotlib.pyplot as plt\n"
        "print(open('data.csv').read().strip())\n"
        "x = np.linspace(0, 2 * np.pi, 100)\n"
        "plt.plot(x, np.sin(x))\n"
    )
    result = await run(code, [File("data.csv", b"x,y\n1,2\n")])
    assert result.ok, result.stderr
    assert result.stdout.strip() == "x,y\n1,2"
    [figure] = result.files
    assert figure.name == "figure-1.png" and figure.data.startswith(b"\x89PNG\r\n\x1a\n")


async def test_open_figures_are_saved_unless_the_code_saved_a_picture():
    plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\n"
    table = "open('outputs/table.csv', 'w').write('a\\n')\n"
    result = await run(plot + table)
    assert sorted(f.name for f in result.files) == ["figure-1.png", "table.csv"]
    result = await run(plot + "plt.savefig('outputs/mine.png')\n")
    assert [f.name for f in result.files] == ["mine.png"]


async def test_a_sandbox_that_cannot_start_is_a_clear_error(tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    with (
        override_settings(CHATAPP_SANDBOX_BWRAP=str(fake)),
        pytest.raises(bubblewrap.SandboxUnavailable) as refused,
    ):
        await run("print(1)", limits=TIGHT)
    assert str(refused.value) == (
        "The sandbox could not start here: bwrap: No permissions to create a new namespace"
    )


async def test_files_written_to_outputs_come_back_and_nothing_else():
    code = (
        "import os\n"
        "open('outputs/table.csv', 'w').write('a,b\\n')\n"
        "os.symlink('/etc/hostname', 'outputs/link')\n"
        "os.mkdir('outputs/folder')\n"
        "open('elsewhere.txt', 'w').write('not an output')\n"
    )
    result = await run(code, limits=TIGHT)
    assert result.ok, result.stderr
    assert [(f.name, f.data) for f in result.files] == [("table.csv", b"a,b\n")]


async def test_reading_the_projects_settings_fails():
    assert os.path.exists(SETTINGS_FILE)  # noqa: ASYNC240 - it is there, outside
    result = await run(f"print(open({str(SETTINGS_FILE)!r}).read())", limits=TIGHT)
    assert not result.ok
    assert "SECRET_KEY" not in result.stdout
    assert "No such file or directory" in result.stderr


async def test_reading_the_password_database_fails():
    result = await run("print(open('/etc/passwd').read())", limits=TIGHT)
    assert not result.ok
    assert "root:" not in result.stdout and "No such file or directory" in result.stderr


async def test_no_secret_reaches_the_code_through_its_environment():
    assert os.environ.get("SECRET_KEY")
    code = (
        "import os\n"
        "print(dict(os.environ))\n"
        "for pid in os.listdir('/proc'):\n"
        "    try:\n"
        "        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError:\n"
        "        pass\n"
    )
    result = await run(code, limits=TIGHT)
    assert result.ok, result.stderr
    assert "'HOME': '/sandbox'" in result.stdout  # it did print its environment
    assert os.environ["SECRET_KEY"] not in result.stdout
    assert "SECRET_KEY" not in result.stdout and "DATABASE" not in result.stdout


async def test_writing_outside_the_work_folder_fails():
    result = await run("open('/usr/evil', 'w').write('x')", limits=TIGHT)
    assert not result.ok and "Read-only file system" in result.stderr


async def test_a_socket_to_127_0_0_1_reaches_nothing():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.settimeout(4)
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(TimeoutError):
            accepted.append(listener.accept())

    waiter = threading.Thread(target=accept)
    waiter.start()
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 3)\nprint('in')"
    result = await run(code, limits=TIGHT)
    waiter.join()
    listener.close()
    assert accepted == []  # the server outside heard nothing
    assert not result.ok and "in" not in result.stdout
    assert "Connection refused" in result.stderr or "unreachable" in result.stderr


async def test_a_fork_bomb_is_contained():
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = await run(code, limits=TIGHT)
    assert not result.ok
    assert result.problem  # stopped by a limit, said in words


async def test_allocating_past_the_memory_limit():
    result = await run("block = bytearray(2 * 1024**3)\nprint('got it')", limits=TIGHT)
    assert not result.ok and "got it" not in result.stdout
    assert result.problem == "It ran out of memory (the limit is 512 MB)."


async def test_an_infinite_loop_is_stopped_by_cpu_time():
    result = await run("while True:\n    pass", limits=TIGHT)
    assert result.problem == "It used more than 2 seconds of CPU time, so it was stopped."


async def test_sleeping_forever_is_stopped_by_wall_time():
    code = "import subprocess, time\nsubprocess.Popen(['sleep', '1000'])\ntime.sleep(1000)"
    result = await run(code, limits=TIGHT)
    assert result.problem == "It did not finish within 6 seconds."


async def test_printing_100_mb_is_cut_and_stopped():
    code = "import sys\nsys.stdout.write('x' * 100_000_000)\nprint('the end')"
    result = await run(code, limits=TIGHT)
    assert result.problem == "It printed more than 2000 characters, so it was stopped."
    assert len(result.stdout) <= 2000 + len("\n… (cut here)")
    assert "the end" not in result.stdout


async def test_a_missing_bubblewrap_is_a_clear_error():
    with (
        override_settings(CHATAPP_SANDBOX_BWRAP="no-such-bwrap"),
        pytest.raises(bubblewrap.SandboxUnavailable, match="apt-get install bubblewrap"),
    ):
        await run("print(1)", limits=TIGHT)


async def test_the_work_folder_shows_only_the_threads_files():
    result = await run("import os\nprint(sorted(os.listdir('.')))", [File("a.csv", b"1")], TIGHT)
    assert result.stdout.strip() == "['a.csv', 'outputs']"


def test_the_status_command_says_whether_the_sandbox_runs():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("provider_status", stdout=out)
    assert "Code interpreter: ready (bubblewrap sandbox)." in out.getvalue()
    out = StringIO()
    with override_settings(CHATAPP_SANDBOX_BWRAP="no-such-bwrap"):
        call_command("provider_status", stdout=out)
    assert "Code interpreter: unavailable. The code interpreter needs bubblewrap" in out.getvalue()
