"""The Django admin is the control room: staff configure assistants, their tools and handoff
rules, see what a model receives, compare and restore versions, look at the workflow as a
picture, and read the trace of every run.

Importing the modules registers their ModelAdmins (Django imports `chatapp.admin` itself).
"""

from __future__ import annotations

from chatapp.admin import assistants, history, runs, threads, users

__all__ = ["assistants", "history", "runs", "threads", "users"]
