"""A browser test that fails cannot break another test: with no Chromium to launch, the
browser tests fail, and the async and database tests that run after them in the same
session still pass. (Before, the failed launch left Playwright's event loop running and
every async test after it errored.)"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_browser_that_cannot_start_breaks_no_other_test(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "no-chromium-here"))
    # Its own database and channel layer: this session's test database is in use.
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'isolation.sqlite3'}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    pytester.chdir()
    result = pytester.runpytest_subprocess(
        f"--rootdir={ROOT}",
        "-c",
        str(ROOT / "pyproject.toml"),
        "-p",
        "no:cacheprovider",
        str(ROOT / "tests/web/test_browser.py::StopInTheBrowser"),
        str(ROOT / "tests/runs/test_engine.py::test_cancel_stops_the_run_and_keeps_partial_text"),
        str(
            ROOT
            / "tests/runs/test_engine.py::test_a_queued_run_cancelled_before_it_starts_never_runs"
        ),
        timeout=120,
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR*test_browser.py::StopInTheBrowser*"])
