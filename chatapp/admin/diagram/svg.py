"""The workflow as a picture: assistants as boxes, handoff rules as arrows.

Drawn on the server as SVG, with no JavaScript and no external service, so the admin keeps
its strict CSP. Pure: it reads the attributes of assistants and rules (models, or anything
shaped like them) and returns SVG text. Every piece of text is escaped, because assistant
names and tool names are written by staff. Where things go is decided in layout.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from django.utils.html import escape
from django.utils.text import Truncator

from chatapp.admin.diagram.layout import (
    LINE,
    MARGIN,
    NODE_H,
    NODE_W,
    Box,
    LabelPlacer,
    Point,
    label_size,
    place,
    routes,
)

LEGEND_H = 130
RIGHT_ROOM = 140  # loops and labels may stand out to the right of the last column
CONSULT = "consult"  # the trigger of a consultation drawn as an edge
DASHES = {"after-tool": "7 5", "consult": "2 4"}
COLOURS = {"edge": "#3d4a5c", "disabled": "#a0a7b1", "entry": "#2457c5", "node": "#5b6675"}


def workflow_svg(
    assistants: Sequence[Any],
    rules: Sequence[Any],
    url_for: Callable[[Any], str],
    consults: Sequence[Any] = (),
) -> str:
    """The SVG of `assistants` (pk, slug, name, is_entry), handoff `rules` (source_id,
    target_id, tool_name, trigger, after_tool, required_metadata, enabled) and `consults`
    (source_id, specialist_id, tool_name, enabled); `url_for(assistant)` links a box."""
    if not assistants:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" class="workflow" width="320" height="60" '
            'viewBox="0 0 320 60" role="img"><text x="20" y="35">No assistants yet.</text></svg>'
        )
    rules = [*rules, *(as_edge(c) for c in consults)]
    boxes = place(assistants, rules)
    width = max(max(b.x for b in boxes.values()) + NODE_W + MARGIN + RIGHT_ROOM, 620)
    diagram_bottom = max(b.y for b in boxes.values()) + NODE_H + 40
    height = diagram_bottom + LEGEND_H
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="workflow-title">',
        '<title id="workflow-title">Assistants and their handoff rules</title>',
        _markers(),
        *_edges(assistants, rules, boxes),
        *(_node(a, boxes[a.pk], url_for(a)) for a in assistants),
        _legend(diagram_bottom),
        "</svg>",
    ]
    return "\n".join(parts)


def _markers() -> str:
    def marker(name: str, colour: str) -> str:
        return (
            f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
            f'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )

    return (
        f"<defs>{marker('workflow-arrow', COLOURS['edge'])}"
        f"{marker('workflow-arrow-disabled', COLOURS['disabled'])}</defs>"
    )


def _node(assistant: Any, box: Box, url: str) -> str:
    entry = bool(assistant.is_entry)
    classes = "workflow-node workflow-node--entry" if entry else "workflow-node"
    stroke = COLOURS["entry"] if entry else COLOURS["node"]
    name = Truncator(assistant.name).chars(26)
    sub = f"{assistant.slug} · entry" if entry else assistant.slug
    inner = (
        f'<rect class="workflow-node__inner" x="{box.x + 4}" y="{box.y + 4}" '
        f'width="{NODE_W - 8}" height="{NODE_H - 8}" rx="5" fill="none" stroke="{stroke}"/>'
        if entry  # the double border marks an entry assistant
        else ""
    )
    return (
        f'<a href="{escape(url)}" class="{classes}"><title>{escape(assistant.name)}</title>'
        f'<rect x="{box.x}" y="{box.y}" width="{NODE_W}" height="{NODE_H}" rx="8" '
        f'fill="#ffffff" stroke="{stroke}" stroke-width="{2 if entry else 1.5}"/>{inner}'
        f'<text class="workflow-node__name" x="{box.centre.x}" y="{box.y + 26}" '
        f'text-anchor="middle" font-weight="600" fill="#1b1f24">{escape(name)}</text>'
        f'<text class="workflow-node__slug" x="{box.centre.x}" y="{box.y + 45}" '
        f'text-anchor="middle" font-size="12" fill="#56606c">{escape(sub)}</text></a>'
    )


def edge_label(rule: Any) -> list[str]:
    first = f"after {rule.after_tool}" if rule.trigger == "after_tool" else rule.tool_name
    lines = [first + ("" if rule.enabled else " (disabled)")]
    if rule.required_metadata:
        lines.append("needs " + ", ".join(str(key) for key in rule.required_metadata))
    return lines


def as_edge(consult: Any) -> SimpleNamespace:
    """A consultation drawn like a rule: an arrow to the specialist, labelled with its tool."""
    return SimpleNamespace(
        source_id=consult.source_id,
        target_id=consult.specialist_id,
        tool_name=consult.tool_name,
        trigger=CONSULT,
        after_tool="",
        required_metadata=[],
        enabled=consult.enabled,
    )


def _edges(assistants: Sequence[Any], rules: Sequence[Any], boxes: dict[Any, Box]) -> list[str]:
    names = {a.pk: a.name for a in assistants}
    placer = LabelPlacer(boxes)
    parts = []
    for index, route in routes(rules, boxes).items():
        rule = rules[index]
        lines = edge_label(rule)
        at = placer.place(route, *label_size(lines))
        title = f"{names[rule.source_id]} → {names[rule.target_id]}: " + "; ".join(lines)
        parts.append(_edge(rule, route.d, at, title))
    return parts


def _edge(rule: Any, path: str, at: Point, title: str) -> str:
    kind = {"after_tool": "after-tool", CONSULT: "consult"}.get(rule.trigger, "tool")
    colour = COLOURS["edge"] if rule.enabled else COLOURS["disabled"]
    classes = ["workflow-edge", f"workflow-edge--{kind}"]
    if not rule.enabled:
        classes.append("workflow-edge--disabled")
    marker = "workflow-arrow" if rule.enabled else "workflow-arrow-disabled"
    dash = f' stroke-dasharray="{DASHES[kind]}"' if kind in DASHES else ""
    lines = edge_label(rule)
    box_w, box_h = label_size(lines)
    top = at.y - box_h / 2
    spans = "".join(
        f'<tspan x="{at.x:.1f}" y="{top + 2 + (i + 1) * LINE:.1f}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return (
        f'<g class="{" ".join(classes)}"><title>{escape(title)}</title>'
        f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.8"{dash} '
        f'marker-end="url(#{marker})"/>'
        f'<rect class="workflow-edge__label-bg" x="{at.x - box_w / 2:.1f}" y="{top:.1f}" '
        f'width="{box_w:.1f}" height="{box_h:.1f}" rx="4" fill="#ffffff" fill-opacity="0.92"/>'
        f'<text class="workflow-edge__label" text-anchor="middle" font-size="12" '
        f'font-family="monospace" fill="{colour}">{spans}</text></g>'
    )


def _legend(y: float) -> str:
    x = MARGIN
    edge, grey = COLOURS["edge"], COLOURS["disabled"]

    def sample(dy: float, attrs: str, text: str, marker: str = "workflow-arrow") -> str:
        return (
            f'<line x1="{x}" y1="{y + dy}" x2="{x + 60}" y2="{y + dy}" stroke-width="1.8" '
            f'{attrs} marker-end="url(#{marker})"/>'
            f'<text x="{x + 72}" y="{y + dy + 4}" font-size="12" fill="#1b1f24">{text}</text>'
        )

    return (
        f'<g class="workflow-legend"><text x="{x}" y="{y}" font-size="12" font-weight="600" '
        f'fill="#1b1f24">Legend</text>'
        + sample(18, f'stroke="{edge}"', "tool: the model calls the handoff tool")
        + sample(
            38, f'stroke="{edge}" stroke-dasharray="7 5"', "after tool: the source's tool succeeded"
        )
        + sample(
            58, f'stroke="{edge}" stroke-dasharray="2 4"', "consult: asks a specialist, who answers"
        )
        + sample(78, f'stroke="{grey}"', "greyed: the rule is disabled", "workflow-arrow-disabled")
        + f'<rect x="{x + 1}" y="{y + 90}" width="58" height="22" rx="5" fill="#ffffff" '
        f'stroke="{COLOURS["entry"]}" stroke-width="2"/><rect x="{x + 4}" y="{y + 93}" '
        f'width="52" height="16" rx="3" fill="none" stroke="{COLOURS["entry"]}"/>'
        f'<text x="{x + 72}" y="{y + 105}" font-size="12" fill="#1b1f24">double border: '
        "an entry assistant (offered on New chat)</text></g>"
    )
