"""How the offline model reads a message: which tool it names, and its arguments.

How arguments are filled from the message, by the parameter's JSON schema (as pydantic writes it):
- enum / const (a `Literal`): the value that appears earliest in the message as a word or phrase;
- integer / number: the number right after the parameter's name, else the first number;
- boolean: a yes/no word (on/off, true/false, yes/no, enable(d)/disable(d), publish(ed)/
  unpublish(ed), show(n)/hide/hidden, visible) — the one closest to the parameter's name if the
  name appears, else the first one;
- a string named `code`: the code quoted in backticks (a ``` fenced block, else `inline`),
  and nothing else — a tool that takes code wins whenever the message quotes code;
- string, first that applies: quoted text ("…", '…' or curly quotes); the phrase after the name and
  `to`/`is`/`as`/`:`/`=` up to the end of the sentence ("title to Who we are"); the word before
  the name after "the"/"a"/"my" ("the about page"); the word after the name, if not a stopword;
- anything else (`$ref`, arrays, objects) cannot be filled. Optional parameters are sent only
  when found; a tool with an unfillable required parameter is not called.
Optional parameters are also only looked for when the message names them (or says one of
their enum values), so a stray number does not become an argument.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from chatapp.providers.base import ToolDefinition

# fmt: off
STOPWORDS = frozenset({
    "a", "an", "the", "to", "of", "for", "in", "on", "at", "by", "and", "or", "is", "are", "it",
    "its", "this", "that", "with", "as", "be", "from", "into", "i", "me", "my", "we", "our",
    "you", "your", "please",
})
TRUE_WORDS = frozenset({
    "on", "true", "yes", "enable", "enabled", "publish", "published", "show", "shown", "visible",
})
FALSE_WORDS = frozenset({
    "off", "false", "no", "disable", "disabled", "unpublish", "unpublished", "hide", "hidden",
})
# fmt: on

_WORD = re.compile(r"[^\W_]+")
# A quote must open and close outside a word, so the apostrophe of "I'd" opens nothing.
_QUOTED = re.compile(r"(?<!\w)(?:\"([^\"]+)\"|'([^']+)'|“([^”]+)”|\u2018([^\u2019]+)\u2019)(?!\w)")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
_NUMBER = r"(?<![\d.])-?\d+(?:\.\d+)?(?!\d)"
_INTEGER = r"(?<![\d.])-?\d+(?!\d|\.\d)"
_LINK = r"\s*(?:(?:to|is|as)\b|[:=])\s*"


# --- reading the message ---------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Lowercase words of letters and digits."""
    return _WORD.findall(text.lower())


def stem_match(a: str, b: str) -> bool:
    """Equal, or one is a prefix of the other sharing at least 4 characters (edit ~ editing)."""
    if a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    return len(shorter) >= 4 and longer.startswith(shorter)


def score_tool(tool: ToolDefinition, words: Sequence[str]) -> int:
    """3 per word of the tool's name the user said, 1 per content word of its description."""
    name_words = [w for w in tool.name.lower().split("_") if w and w not in STOPWORDS]
    content_words = {w for w in tokenize(tool.description) if len(w) >= 3 and w not in STOPWORDS}
    said = set(words)

    def heard(word: str) -> bool:
        return any(stem_match(word, user_word) for user_word in said)

    return 3 * sum(map(heard, name_words)) + sum(map(heard, content_words))


def _name_pattern(name: str) -> str:
    """The parameter's name as the user would write it: page_id matches "page id" too."""
    parts = [re.escape(part) for part in name.lower().split("_") if part]
    return r"(?<!\w)" + r"[\s_-]*".join(parts) + r"(?!\w)"


def find_enum(values: Sequence[Any], message: str) -> Any | None:
    found: list[tuple[int, Any]] = []
    for value in values:
        match = re.search(r"(?<!\w)" + re.escape(str(value).lower()) + r"(?!\w)", message.lower())
        if match:
            found.append((match.start(), value))
    return min(found, key=lambda hit: hit[0])[1] if found else None


def find_number(name: str, message: str, *, integer: bool) -> int | float | None:
    number = _INTEGER if integer else _NUMBER
    match = re.search(_name_pattern(name) + rf"(?:{_LINK}|\s+)?({number})", message, re.I)
    match = match or re.search(f"({number})", message)
    if match is None:
        return None
    text = match.group(1)
    return int(text) if integer or "." not in text else float(text)


def find_boolean(name: str, message: str) -> bool | None:
    words = tokenize(message)
    name_words = [part for part in name.lower().split("_") if part]
    starts = [i for i in range(len(words)) if words[i : i + len(name_words)] == name_words]
    # The name itself is no answer, though it may be a yes/no word ("published no").
    named = {i for start in starts for i in range(start, start + len(name_words))}
    hits = [
        i for i, word in enumerate(words) if word in TRUE_WORDS | FALSE_WORDS and i not in named
    ]
    if not hits:
        return None
    if starts:  # the name appears: the yes/no word nearest to it speaks for it
        hits.sort(key=lambda i: min(abs(i - start) for start in starts))
    return words[hits[0]] in TRUE_WORDS


_FENCED = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)```", re.S)
_INLINE_CODE = re.compile(r"`([^`]+)`")


def find_code(message: str) -> str | None:
    """The code the message quotes: a fenced block, else inline `code`."""
    found = _FENCED.search(message) or _INLINE_CODE.search(message)
    code = found.group(1).strip() if found else ""
    return code or None


def takes_code(tool: ToolDefinition) -> bool:
    return "code" in (tool.parameters.get("required") or ())


def find_string(name: str, message: str) -> str | None:
    if name == "code":
        return find_code(message)
    quoted = _QUOTED.search(message)
    if quoted:
        return next(group for group in quoted.groups() if group is not None).strip()
    name_re = _name_pattern(name)
    phrase = re.search(name_re + _LINK + r"(\S.*)", message, re.I)
    if phrase:
        sentence = _SENTENCE_END.split(phrase.group(1))[0]
        value = sentence.strip().rstrip(".,;:!?").strip()
        if value:
            return value
    before = re.search(r"(?<!\w)(?:the|a|my)\s+(\w[\w-]*)\s+" + name_re, message, re.I)
    if before:
        return before.group(1)
    after = re.search(name_re + r"\s+(\w[\w-]*)", message, re.I)
    if after and after.group(1).lower() not in STOPWORDS:
        return after.group(1)
    return None


def _concrete_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema an optional parameter has when given (anyOf [X, null] -> X); None for $ref."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        non_null = [option for option in options if option.get("type") != "null"]
        schema = non_null[0] if non_null else {}
    if "$ref" in schema or "allOf" in schema:
        return None
    return schema


def fill_parameter(name: str, schema: dict[str, Any], message: str) -> Any | None:
    concrete = _concrete_schema(schema)
    if concrete is None:
        return None
    if "const" in concrete:
        return find_enum([concrete["const"]], message)
    if "enum" in concrete:
        return find_enum(concrete["enum"], message)
    kind = concrete.get("type")
    if isinstance(kind, list):  # ["string", "null"]
        kind = next((k for k in kind if k != "null"), None)
    if kind in ("integer", "number"):
        return find_number(name, message, integer=kind == "integer")
    if kind == "boolean":
        return find_boolean(name, message)
    if kind == "string":
        return find_string(name, message)
    return None


def fill_arguments(parameters: dict[str, Any], message: str) -> dict[str, Any] | None:
    """Arguments found in the message, or None when a required one cannot be filled."""
    required = set(parameters.get("required") or ())
    words = tokenize(message)
    arguments: dict[str, Any] = {}
    for name, schema in (parameters.get("properties") or {}).items():
        # An optional parameter is set only when the user names it (or says one of its enum
        # values): a stray number or "on" must not switch on pass_num_previous_messages.
        if name not in required and not (mentions(name, words) or has_choices(schema)):
            continue
        value = fill_parameter(name, schema, message)
        if value is not None:
            arguments[name] = value
        elif name in required:
            return None
    return arguments


def has_choices(schema: dict[str, Any]) -> bool:
    concrete = _concrete_schema(schema)
    return concrete is not None and ("enum" in concrete or "const" in concrete)


def mentions(name: str, words: Sequence[str]) -> bool:
    """Whether the message names the parameter (any content word of its name)."""
    parts = [p for p in name.lower().split("_") if p and p not in STOPWORDS]
    return any(stem_match(part, word) for part in parts for word in words)


def choose_tool(
    tools: Sequence[ToolDefinition], message: str
) -> tuple[ToolDefinition, dict[str, Any]] | None:
    """The best-scoring tool whose required arguments the message fills; ties go to the first."""
    words = tokenize(message)
    best: tuple[ToolDefinition, dict[str, Any]] | None = None
    best_score = 0
    quotes_code = find_code(message) is not None
    for tool in tools:
        score = score_tool(tool, words) + (100 if quotes_code and takes_code(tool) else 0)
        if score <= best_score:
            continue
        arguments = fill_arguments(tool.parameters, message)
        if arguments is not None:
            best, best_score = (tool, arguments), score
    return best


# --- writing the reply -----------------------------------------------------------------------
