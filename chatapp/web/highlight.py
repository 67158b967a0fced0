"""Code in answers, highlighted on the server with Pygments: spans with Pygments' short token
classes, styled by static/chatapp/code.css (made by `code_css()`; a test keeps it current).
The sanitiser keeps those classes and nothing else, so highlighted code is as inert as text.
"""

from __future__ import annotations

from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

# Code blocks sit on a dark background in both themes (--code-bg): one dark style for both.
STYLE = "github-dark"
SCOPE = ".msg__body pre"
TOKEN_CLASSES = frozenset(name for name in STANDARD_TYPES.values() if name)
FORMATTER = HtmlFormatter(nowrap=True)


def highlight(code: str, language: str, attributes: object = None) -> str:
    """markdown-it's highlight hook: the code as Pygments spans, or "" (plain, escaped by
    markdown-it) for a language Pygments does not know or a block that names none."""
    name = (language or "").strip().split()[0] if (language or "").strip() else ""
    if not name:
        return ""
    try:
        lexer = get_lexer_by_name(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return ""
    return pygments_highlight(code, lexer, FORMATTER)


def code_css() -> str:
    """The token colours, for static/chatapp/code.css (backgrounds stay the page's own)."""
    rules = HtmlFormatter(style=STYLE).get_style_defs(SCOPE).splitlines()
    kept = [
        rule
        for rule in rules
        if rule.startswith(SCOPE + " .") and "background" not in rule.split("{", 1)[1]
    ]
    header = (
        "/* Made by chatapp.web.highlight.code_css() (Pygments' "
        f"{STYLE}); tests/web/test_rendering.py keeps it current. */"
    )
    return "\n".join([header, *kept]) + "\n"
