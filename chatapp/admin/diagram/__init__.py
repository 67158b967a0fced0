"""The workflow diagram of the admin: assistants and handoff rules as server-drawn SVG."""

from __future__ import annotations

from chatapp.admin.diagram.svg import workflow_svg

__all__ = ["workflow_svg"]
