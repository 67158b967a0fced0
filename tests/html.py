"""Checks on rendered HTML shared by the page and admin tests."""

from __future__ import annotations

from html.parser import HTMLParser


class InlineCode(HTMLParser):
    """What a strict CSP would block: inline scripts, <style>, style= and on*= attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style>")
        if "style" in names:
            self.problems.append(f"style= on <{tag}>")
        if any(name.startswith("on") for name in names):
            self.problems.append(f"event handler attribute on <{tag}>")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.problems
