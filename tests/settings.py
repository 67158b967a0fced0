"""The tests' settings: chatapp's own, as in production (DEBUG off), with a key of their own."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

from chatapp.settings import *  # noqa: F403
