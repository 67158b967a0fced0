"""The tests' settings: chatapp's own, as in production (DEBUG off), with a key of their own."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

# Files the tests store go to a folder of their own (servers the tests start inherit it).
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="chatapp-test-media-"))

from chatapp.settings import *  # noqa: F403
