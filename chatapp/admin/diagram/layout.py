"""Where things go in the workflow diagram: boxes, the routes of edges, their labels.

Deterministic and simple. Entry assistants form the first column, then one column per
handoff distance (breadth first along the rules); assistants no entry reaches start new rows
in the first column. Edges are quadratic curves: edges between the same two assistants bend
to opposite sides, an edge that would cross a box in between bends around it, and a rule
back to its own source loops out of the box's top-right corner. Labels are put where they
cover no box and no other label, when such a place is near the middle of their edge.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NODE_W, NODE_H = 200, 60
GAP_X, GAP_Y = 170, 80
MARGIN, TOP = 30, 70  # TOP leaves room for loops and labels above the first row
PAIR_SPACING = 40  # how far apart edges between the same two assistants bend
LINE = 14  # label line height
CHAR_W = 6.8  # width of a character of the 12px monospace labels


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Rect:
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Rect) -> bool:
        return not (
            self.x1 <= other.x0 or other.x1 <= self.x0 or self.y1 <= other.y0 or other.y1 <= self.y0
        )


def around(centre: Point, width: float, height: float) -> Rect:
    return Rect(
        centre.x - width / 2, centre.y - height / 2, centre.x + width / 2, centre.y + height / 2
    )


@dataclass(frozen=True)
class Box:
    x: float
    y: float

    @property
    def centre(self) -> Point:
        return Point(self.x + NODE_W / 2, self.y + NODE_H / 2)

    @property
    def rect(self) -> Rect:
        return Rect(self.x, self.y, self.x + NODE_W, self.y + NODE_H)

    def exit_towards(self, towards: Point) -> Point:
        """Where a line from the centre towards `towards` leaves the box."""
        c = self.centre
        dx, dy = towards.x - c.x, towards.y - c.y
        if dx == 0 and dy == 0:
            return c
        t = min(
            (NODE_W / 2) / abs(dx) if dx else math.inf,
            (NODE_H / 2) / abs(dy) if dy else math.inf,
        )
        return Point(c.x + dx * t, c.y + dy * t)


@dataclass(frozen=True)
class Route:
    """A quadratic (c2 is None) or cubic Bézier curve; `side` is the unit vector towards
    which the edge bulges, where its label may move to clear the way."""

    start: Point
    c1: Point
    end: Point
    side: Point
    c2: Point | None = None

    @property
    def d(self) -> str:
        s, c, e = self.start, self.c1, self.end
        if self.c2 is None:
            return f"M{s.x:.1f},{s.y:.1f} Q{c.x:.1f},{c.y:.1f} {e.x:.1f},{e.y:.1f}"
        c2 = self.c2
        return (
            f"M{s.x:.1f},{s.y:.1f} C{c.x:.1f},{c.y:.1f} {c2.x:.1f},{c2.y:.1f} {e.x:.1f},{e.y:.1f}"
        )

    def at(self, t: float) -> Point:
        points = [self.start, self.c1, *([self.c2] if self.c2 else []), self.end]
        while len(points) > 1:  # de Casteljau
            points = [
                Point(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t)
                for a, b in itertools.pairwise(points)
            ]
        return points[0]


def place(assistants: Sequence[Any], rules: Sequence[Any]) -> dict[Any, Box]:
    """A box per assistant: column = handoff distance from an entry, row = order found."""
    by_name = sorted(assistants, key=lambda a: (a.name.lower(), a.slug))
    order = {a.pk: i for i, a in enumerate(by_name)}
    targets: dict[Any, set[Any]] = defaultdict(set)
    for rule in rules:
        if rule.source_id in order and rule.target_id in order:
            targets[rule.source_id].add(rule.target_id)
    column: dict[Any, int] = {}
    found: list[Any] = []

    def walk(roots: list[Any]) -> None:
        queue = deque(roots)
        column.update(dict.fromkeys(roots, 0))
        while queue:
            pk = queue.popleft()
            found.append(pk)
            for target in sorted(targets[pk], key=order.__getitem__):
                if target not in column:
                    column[target] = column[pk] + 1
                    queue.append(target)

    walk([a.pk for a in by_name if a.is_entry])
    for a in by_name:  # not reachable from an entry: a new tree in the first column
        if a.pk not in column:
            walk([a.pk])
    rows_used: dict[int, int] = defaultdict(int)
    boxes: dict[Any, Box] = {}
    for pk in found:
        col = column[pk]
        boxes[pk] = Box(MARGIN + col * (NODE_W + GAP_X), TOP + rows_used[col] * (NODE_H + GAP_Y))
        rows_used[col] += 1
    return boxes


def routes(rules: Sequence[Any], boxes: dict[Any, Box]) -> dict[int, Route]:
    """The route of each drawable rule, by its index in `rules`."""
    pairs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, rule in enumerate(rules):
        if rule.source_id in boxes and rule.target_id in boxes:
            low, high = sorted((str(rule.source_id), str(rule.target_id)))
            pairs[low, high].append(index)
    result: dict[int, Route] = {}
    for (low, _), indexes in pairs.items():
        for position, index in enumerate(indexes):
            rule = rules[index]
            source, target = boxes[rule.source_id], boxes[rule.target_id]
            if rule.source_id == rule.target_id:
                result[index] = loop(source, position)
                continue
            bend = (position - (len(indexes) - 1) / 2) * PAIR_SPACING + detour(source, target)
            # Bends are measured from the pair's lower id, so A→B and B→A part ways.
            result[index] = curve(source, target, bend if str(rule.source_id) == low else -bend)
    return result


def detour(source: Box, target: Box) -> float:
    """A straight line past a neighbour would cross its box: bend edges that skip one."""
    skips_column = abs(source.x - target.x) > NODE_W + GAP_X
    skips_row = source.x == target.x and abs(source.y - target.y) > NODE_H + GAP_Y
    return 60.0 if skips_column or skips_row else 0.0


def curve(source: Box, target: Box, bend: float) -> Route:
    a, b = source.centre, target.centre
    length = math.hypot(b.x - a.x, b.y - a.y) or 1.0
    nx, ny = -(b.y - a.y) / length, (b.x - a.x) / length  # unit normal
    # A quadratic's midpoint lies halfway to its control point: double the bend.
    control = Point((a.x + b.x) / 2 + 2 * bend * nx, (a.y + b.y) / 2 + 2 * bend * ny)
    sign = -1.0 if bend < 0 else 1.0
    return Route(
        source.exit_towards(control),
        control,
        target.exit_towards(control),
        Point(sign * nx, sign * ny),
    )


def loop(box: Box, position: int) -> Route:
    reach = 40 + 16 * position
    start = Point(box.x + NODE_W - 36, box.y)
    end = Point(box.x + NODE_W, box.y + 22)
    return Route(
        start,
        Point(start.x + 6, start.y - reach),
        end,
        Point(math.sqrt(0.5), -math.sqrt(0.5)),
        c2=Point(end.x + reach, end.y - 6),
    )


def label_size(lines: list[str]) -> tuple[float, float]:
    return max(len(line) for line in lines) * CHAR_W + 10, len(lines) * LINE + 6


class LabelPlacer:
    """Puts each label beside its edge, on the side the edge bulges towards, where it covers
    no box and no earlier label: near the middle if free, else a little along the edge or
    further out, else on the other side; when nothing is free, at the middle anyway."""

    STEPS = (0.5, 0.4, 0.6, 0.3, 0.7)
    SHIFT = 10

    def __init__(self, boxes: dict[Any, Box]) -> None:
        self.taken = [box.rect for box in boxes.values()]

    def place(self, route: Route, width: float, height: float) -> Point:
        across = abs(route.side.x) * width + abs(route.side.y) * height
        beside = across / 2 + 4  # the label's edge just clear of the line
        for direction in (1, -1):
            for extra in range(0, int(across) + 2 * self.SHIFT, self.SHIFT):
                for t in self.STEPS:
                    point = route.at(t)
                    offset = direction * (beside + extra)
                    point = Point(point.x + route.side.x * offset, point.y + route.side.y * offset)
                    rect = around(point, width + 4, height + 2)
                    if not any(rect.overlaps(other) for other in self.taken):
                        self.taken.append(rect)
                        return point
        point = route.at(0.5)
        self.taken.append(around(point, width, height))
        return point
