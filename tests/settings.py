"""The tests' settings: chatapp's own, as in production (DEBUG off), with a key of their own."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")


def _remove_in(pid: int, folder: str) -> None:
    if os.getpid() == pid:  # not in a forked child that exits before the tests end
        shutil.rmtree(folder, ignore_errors=True)


# Files the tests store go to a folder of their own (servers the tests start inherit it),
# removed when the test run that made it ends.
if "MEDIA_ROOT" not in os.environ:
    os.environ["MEDIA_ROOT"] = tempfile.mkdtemp(prefix="chatapp-test-media-")
    atexit.register(_remove_in, os.getpid(), os.environ["MEDIA_ROOT"])

from chatapp.settings import *  # noqa: E402, F403
