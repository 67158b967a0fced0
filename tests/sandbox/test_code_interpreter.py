"""run_python through the whole product: a scripted or offline model calls it, the code runs
in the sandbox with the chat's files, its pictures come back as the chat's files — on the
page, in the admin's timeline — and every escape ends as a plain tool error in a run that
goes on."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from chatapp.models import Attachment, Run
from chatapp.testing import call, say

PLOT = (
    "import csv\n"
    "import matplotlib.pyplot as plt\n"
    "rows = list(csv.DictReader(open('sales.csv')))\n"
    "plt.bar([r['month'] for r in rows], [int(r['units']) for r in rows])\n"
    "print(sum(int(r['units']) for r in rows), 'units')\n"
)
SALES = ContentFile(b"month,units\nJan,3\nFeb,5\n", name="sales.csv")


@pytest.fixture
def demo(transactional_db):
    call_command("seed_demo", stdout=io.StringIO())


@pytest.fixture
def tight(settings):
    settings.CHATAPP_SANDBOX = {**settings.CHATAPP_SANDBOX, "CPU_SECONDS": 2, "WALL_SECONDS": 6}
    settings.CHATAPP_SANDBOX["MEMORY_MB"] = 512
    settings.CHATAPP_SANDBOX["OUTPUT_CHARS"] = 2000


def test_a_plot_of_an_attached_csv(demo, conversation, client):
    chat = conversation(
        "data-analyst", model=[call("run_python", code=PLOT), say("February sold more.")]
    )
    chat.send("Plot the units per month", files=[SALES])
    assert chat.status == "completed" and chat.reply == "February sold more."
    [(name, output, is_error)] = chat.tool_results
    assert (name, is_error) == ("run_python", False)
    assert "8 units" in output and "Files written: figure-1.png" in output
    assert chat.files == ["sales.csv", "figure-1.png"]
    assert chat.file("figure-1.png").startswith(b"\x89PNG")
    figure = Attachment.objects.get(name="figure-1.png")
    assert (figure.source, figure.content_type, figure.message.role) == (
        "tool",
        "image/png",
        "tool",
    )
    # The model is told the user sees it.
    assert "Files shown to the user: figure-1.png" in figure.message.content

    client.force_login(chat.thread.owner)
    page = client.get(reverse("thread", args=[chat.thread.pk])).content.decode()
    assert f'<img src="/files/{figure.pk}/" alt="figure-1.png"' in page  # inline, in the chat
    assert "plt.bar(" in page  # the code, shown as code


def test_the_admin_timeline_shows_the_code_its_output_and_its_files(
    demo, conversation, admin_client
):
    chat = conversation(
        "data-analyst", model=[call("run_python", code=PLOT), say("February sold more.")]
    )
    chat.send("Plot the units per month", files=[SALES])
    run = Run.objects.get(thread=chat.thread)
    page = admin_client.get(reverse("admin:chatapp_run_change", args=[run.pk])).content.decode()
    figure = Attachment.objects.get(name="figure-1.png")
    assert (
        "<h4>Code</h4>" in page
        and "rows = list(csv.DictReader(open(&#x27;sales.csv&#x27;)))" in page
    )
    assert "8 units" in page
    assert f'href="/files/{figure.pk}/">figure-1.png</a> (image/png' in page


ESCAPES = {
    "the project's settings": (
        "print(open('/work/main/chatapp/settings.py').read())",
        "No such file or directory",
    ),
    "the password database": ("print(open('/etc/passwd').read())", "No such file or directory"),
    "a socket to 127.0.0.1": (
        "import socket\nsocket.create_connection(('127.0.0.1', 5432), 2)",
        "Connection refused",
    ),
    "a fork bomb": (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "It did not finish within 6 seconds.",
    ),
    "memory": ("x = bytearray(4 * 1024**3)", "It ran out of memory (the limit is 512 MB)."),
    "an infinite loop": ("while True:\n    pass", "It used more than 2 seconds of CPU time"),
    "printing 100 MB": (
        "import sys\nsys.stdout.write('x' * 100_000_000)",
        "It printed more than 2000 characters, so it was stopped.",
    ),
}


@pytest.mark.parametrize("attempt", ESCAPES)
def test_an_escape_is_a_plain_tool_error_and_the_next_run_works(demo, conversation, tight, attempt):
    code, said = ESCAPES[attempt]
    chat = conversation(
        "data-analyst",
        model=[
            call("run_python", code=code),
            say("That did not work."),
            call("run_python", code="print('still here')"),
            say("Fine."),
        ],
    )
    chat.send("try it")
    [(_, output, is_error)] = chat.tool_results
    assert is_error and said in output
    assert chat.status == "completed"  # the answer goes on after the tool error
    chat.send("again")
    [(_, output, is_error)] = chat.tool_results
    assert not is_error and "still here" in output


def test_the_offline_model_runs_code_quoted_in_backticks(demo, conversation):
    chat = conversation("data-analyst")
    chat.send(
        "plot `import numpy as np, matplotlib.pyplot as plt; "
        "x = np.linspace(0, 6.3, 100); plt.plot(x, np.sin(x))`"
    )
    assert chat.tool_calls == [
        (
            "run_python",
            {
                "code": "import numpy as np, matplotlib.pyplot as plt; "
                "x = np.linspace(0, 6.3, 100); plt.plot(x, np.sin(x))"
            },
        )
    ]
    assert chat.files == ["figure-1.png"]
    assert chat.reply == "Data analyst (offline model): Done: run_python → The code ran."


def test_welcome_hands_off_to_the_data_analyst(demo, conversation):
    chat = conversation("welcome")
    chat.send("I need the data analyst for a plot")
    assert chat.handoffs == [("welcome", "data-analyst")]
    assert chat.assistant == "data-analyst"


def test_a_file_the_code_writes_is_a_download_link(demo, conversation, client):
    code = "open('outputs/totals.csv', 'w').write('month,units\\nJan,3\\n')"
    chat = conversation("data-analyst", model=[call("run_python", code=code), say("Here.")])
    chat.send("make a table")
    totals = Attachment.objects.get(name="totals.csv")
    assert (totals.content_type, chat.file("totals.csv")) == ("text/csv", b"month,units\nJan,3\n")
    client.force_login(chat.thread.owner)
    page = client.get(reverse("thread", args=[chat.thread.pk])).content.decode()
    assert f'<a class="file-link" href="/files/{totals.pk}/" download>totals.csv</a>' in page


def test_the_code_interpreter_is_offered_in_the_admin_and_off_by_default(demo, admin_client):
    from chatapp.models import Assistant

    page = admin_client.get(reverse("admin:chatapp_assistant_add")).content.decode()
    assert 'value="run_python"' in page  # a tool staff can tick
    with_it = {a.slug for a in Assistant.objects.all() if "run_python" in a.tools}
    assert with_it == {"data-analyst"}


def test_a_sandbox_that_cannot_start_is_a_tool_error(demo, conversation, settings):
    settings.CHATAPP_SANDBOX_BWRAP = "no-such-bwrap"
    chat = conversation("data-analyst", model=[call("run_python", code="print(1)"), say("No.")])
    chat.send("run it")
    [(_, output, is_error)] = chat.tool_results
    assert is_error and "The code interpreter needs bubblewrap" in output


def test_an_assistant_without_the_tool_cannot_run_code(demo, conversation):
    chat = conversation("welcome", model=[call("run_python", code="print(1)"), say("No.")])
    chat.send("run this")
    [(_, output, is_error)] = chat.tool_results
    assert is_error and output == "Welcome has no tool named 'run_python'."


def test_the_terminal_chat_attaches_a_file_and_says_where_the_plot_is(
    demo, user, monkeypatch, tmp_path
):
    data = tmp_path / "sales.csv"
    data.write_bytes(b"month,units\nJan,3\nFeb,5\n")
    code = "import csv, matplotlib.pyplot as plt; rows = list(csv.reader(open('sales.csv'))); "
    code += "print(len(rows), 'rows'); plt.plot([1, 2])"
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"count `{code}`\n\n"))
    out = io.StringIO()
    call_command("chat", "data-analyst", "--user", user.username, "--attach", str(data), stdout=out)
    text = out.getvalue()
    assert "Attached sales.csv: sent with your first message." in text
    assert "3 rows" in text
    figure = Attachment.objects.get(name="figure-1.png")
    assert f"📎 figure-1.png ({figure.size} bytes): {figure.file.path}" in text
    message = Attachment.objects.get(name="sales.csv").message
    assert message.role == "user" and message.content.startswith("count `import csv")


def test_the_terminal_chat_refuses_a_file_it_may_not_attach(demo, user, tmp_path):
    program = tmp_path / "run.exe"
    program.write_bytes(b"MZ")
    with pytest.raises(CommandError, match=r"run\.exe: files of this type cannot be attached"):
        call_command("chat", "data-analyst", "--attach", str(program), stdout=io.StringIO())
    with pytest.raises(CommandError, match=r"Cannot read .*missing\.csv: No such file"):
        call_command(
            "chat", "data-analyst", "--attach", str(tmp_path / "missing.csv"), stdout=io.StringIO()
        )
    assert not Attachment.objects.exists()
