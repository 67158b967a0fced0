"""The workflow diagram: every assistant and rule drawn as SVG, escaped and deterministic."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest

from chatapp.admin.diagram import workflow_svg
from tests.admin.support import svg_of, url
from tests.factories import assistant as make_assistant
from tests.factories import rule as make_rule

pytest_plugins = ["tests.admin.support"]  # the fixtures demo and run

# Versions are recorded when a transaction commits, and say() runs the engine in threads.
pytestmark = pytest.mark.django_db(transaction=True)


# --- the workflow diagram ----------------------------------------------------------------------


def test_the_diagram_draws_every_assistant_and_rule(admin_client, demo):
    welcome, editor = demo["welcome"], demo["page-editor"]
    svg = svg_of(admin_client.get(url("assistant_diagram")))
    ET.fromstring(svg)  # well-formed
    for a in (welcome, editor):
        assert f'<a href="{url("assistant_change", a.pk)}"' in svg
        assert f">{a.name}</text>" in svg
    assert "workflow-node--entry" in svg and "welcome · entry" in svg
    after = re.search(r'<g class="workflow-edge workflow-edge--after-tool">.*?</g>', svg, re.S)
    tool = re.search(r'<g class="workflow-edge workflow-edge--tool">.*?</g>', svg, re.S)
    assert after and tool
    assert "after select_page" in after.group(0) and "needs page_id" in after.group(0)
    assert 'stroke-dasharray="7 5"' in after.group(0)
    assert "edit_another_page" in tool.group(0) and "stroke-dasharray" not in tool.group(0)


def test_the_diagram_escapes_names_and_greys_disabled_rules(admin_client, demo):
    evil = make_assistant("evil", name="<script>alert(1)</script>", provider="")
    make_rule(demo["welcome"], evil, tool_name="to_evil", enabled=False)
    svg = svg_of(admin_client.get(url("assistant_diagram")))
    ET.fromstring(svg)
    assert "<script>" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    disabled = re.search(r'<g class="[^"]*workflow-edge--disabled">.*?</g>', svg, re.S)
    assert disabled and "to_evil (disabled)" in disabled.group(0)
    assert 'marker-end="url(#workflow-arrow-disabled)"' in disabled.group(0)


def test_the_diagram_layout_is_deterministic_and_parts_parallel_edges():
    def node(pk: int, name: str, entry: bool = False) -> SimpleNamespace:
        return SimpleNamespace(pk=pk, slug=name.lower(), name=name, is_entry=entry)

    def edge(source: int, target: int, name: str) -> SimpleNamespace:
        return SimpleNamespace(
            source_id=source,
            target_id=target,
            tool_name=name,
            trigger="tool",
            after_tool="",
            required_metadata=[],
            enabled=True,
        )

    nodes = [node(1, "Start", entry=True), node(2, "Middle"), node(3, "End"), node(4, "Alone")]
    edges = [edge(1, 2, "a"), edge(2, 1, "b"), edge(2, 3, "c"), edge(3, 3, "again")]
    svg = workflow_svg(nodes, edges, lambda a: f"/a/{a.pk}/")
    assert svg == workflow_svg(nodes, edges, lambda a: f"/a/{a.pk}/")
    ET.fromstring(svg)
    paths = re.findall(r'<path d="(M[^"]+[QC][^"]+)"', svg)
    assert len(paths) == 4 and len(set(paths)) == 4  # A→B and B→A do not overlap
    assert "No assistants yet." in workflow_svg([], [], str)
