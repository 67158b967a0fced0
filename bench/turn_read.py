"""What the reads before an answer's first word cost, each against a baseline measured in
the same run: the same SQL with the same parameters, executed and fetched on the same
connection without the ORM. The ratio is what Django's building, compiling and model making
add to what the database itself does; every answer pays it before its first token. The
reads: the turn (`chatapp.runs.turns.load_turn`: the run, its thread and assistant, the
history), the page's session check (`web.access.still_signed_in`, on every frame), the
user's limits (`services.check_limits`, in the transaction that stores the message) and what
a page reads when it connects (`ThreadConsumer.owned_thread` and `current_state`: the
thread as stored, rendered, on every connect and reconnect): with short answers, and with
answers as models write them (Markdown, code) the first time and again, when the answers
were rendered a moment before (for the page itself, as its socket connects).

    .venv/bin/python bench/turn_read.py --messages 10

A temporary SQLite database; figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FOLDER = tempfile.TemporaryDirectory()
os.environ["DATABASE_URL"] = f"sqlite:///{Path(FOLDER.name) / 'turn.sqlite3'}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapp.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from chatapp import services  # noqa: E402
from chatapp.models import Assistant, Message, Run  # noqa: E402
from chatapp.runs import turns  # noqa: E402
from chatapp.web import markdown  # noqa: E402
from chatapp.web.access import still_signed_in  # noqa: E402
from chatapp.web.consumers import ThreadConsumer  # noqa: E402

# An answer as models write them: a few sentences, a list and a block of code.
ANSWER = """Here is one way to do it:

1. read the rows;
2. **sum** the column you need, e.g. `sum(float(r["amount"]) for r in rows)`.

```python
import csv
from pathlib import Path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))
```

See [the csv module](https://docs.python.org/3/library/csv.html) for the details.
"""


def a_thread_with(messages: int, answer: str = "answer") -> str:
    """A finished run in a thread of `messages` messages (questions and answers)."""
    bot = Assistant.objects.get_or_create(slug="bench", name="Bench", provider="offline")[0]
    user = get_user_model().objects.get_or_create(username="bench")[0]
    thread = services.start_thread(bot, user=user)
    run = None
    for index in range(messages // 2):
        _, run = services.send_message(thread, f"question {index}")
        Message.objects.create(
            thread=thread, run=run, role=Message.Role.ASSISTANT, assistant=bot, content=answer
        )
        Run.objects.filter(pk=run.pk).update(status=Run.Status.COMPLETED)
    assert run is not None
    return str(run.pk)


def per_call(work: Callable[[], object], calls: int) -> float:
    """Median of five rounds, in ms per call."""
    for _ in range(20):
        work()
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            work()
        rounds.append((time.perf_counter() - started) * 1000 / calls)
    return statistics.median(rounds)


def against_its_sql(name: str, work: Callable[[], object], calls: int) -> None:
    with CaptureQueriesContext(connection) as captured:
        work()
    # The captured SQL has its parameters written in: what the database is given.
    sql = [query["sql"] for query in captured.captured_queries]

    def raw() -> None:
        with connection.cursor() as cursor:
            for text in sql:
                cursor.execute(text)
                cursor.fetchall()

    orm = per_call(work, calls)
    baseline = per_call(raw, calls)
    print(
        f"{name:34} {len(sql):>10} {baseline:>15.3f} {orm:>12.3f} {orm / baseline:>6.1f}",
        flush=True,
    )


def main(messages: int, calls: int) -> None:
    call_command("migrate", verbosity=0)
    run_id = a_thread_with(messages)
    turns.load_turn(run_id)  # the assistant's rules are read once, then kept
    user = get_user_model().objects.get(username="bench")
    # A signed-in page's session, as the login view leaves it.
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY], session[HASH_SESSION_KEY] = str(user.pk), user.get_session_auth_hash()
    session.save()

    def limits() -> None:
        with transaction.atomic():
            services.check_limits(user.pk)

    print(f"reads before an answer's first word, SQLite, one thread, ms per call ({calls} calls)")
    print(f"{'read':34} {'statements':>10} {'baseline: SQL':>15} {'chatapp':>12} {'ratio':>6}")
    against_its_sql(f"turn of {messages} messages", lambda: turns.load_turn(run_id), calls)
    against_its_sql("session check", lambda: still_signed_in(session.session_key, user.pk), calls)
    against_its_sql("limits (in a transaction)", limits, calls)
    page = ThreadConsumer()

    def connecting(thread: Any, *, rendered_before: bool = True) -> Callable[[], None]:
        def connect() -> None:
            if not rendered_before:  # no answer of it rendered yet in this process
                markdown.rendered = markdown.Rendered(markdown.CACHE_CHARS)
            page.scope = {"user": user, "url_route": {"kwargs": {"thread_id": thread.pk}}}
            page.thread = ThreadConsumer.__dict__["owned_thread"].func(page)  # not its await
            page.current_state(reread=False)

        return connect

    plain = Run.objects.get(pk=run_id).thread
    connect = connecting(plain, rendered_before=False)
    against_its_sql(f"a page connecting, {messages} messages", connect, calls // 5)
    coded = Run.objects.get(pk=a_thread_with(messages, ANSWER)).thread
    for rendered_before, when in ((False, "first"), (True, "again")):
        against_its_sql(
            f"  ... answers with code, {when}",
            connecting(coded, rendered_before=rendered_before),
            calls // 5,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    main(args.messages, args.calls)
