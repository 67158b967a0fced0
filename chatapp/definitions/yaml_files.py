"""Assistant definitions to and from plain data and YAML (the database: export.py).

The YAML format is the fields of `AssistantDefinition` / `HandoffDefinition` /
`ConsultDefinition` under a top-level `assistants:` list. Loading is strict (unknown keys,
wrong types and duplicate keys are errors) and every error names the file and the assistant.
Dumping is deterministic — assistants by slug, keys in a fixed order, defaults left out,
multi-line text as `|` blocks — so exports diff cleanly and export → sync → export gives the
same text.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from assistants_registry.definitions import (
    AssistantDefinition,
    ConsultDefinition,
    DefinitionError,
    HandoffDefinition,
)

# The keys in the order they are written: the dataclasses' own order, with the nested
# rules last so that an assistant's settings read first.
HANDOFF_KEYS = tuple(f.name for f in dataclasses.fields(HandoffDefinition))
CONSULT_KEYS = tuple(f.name for f in dataclasses.fields(ConsultDefinition))
NESTED = {"handoffs": HANDOFF_KEYS, "consults": CONSULT_KEYS}
ASSISTANT_KEYS = (
    *(f.name for f in dataclasses.fields(AssistantDefinition) if f.name not in {*NESTED, "origin"}),
    *NESTED,
)
HEADER = (
    "# Assistants, their handoffs and consults, written by `manage.py export_assistants`.\n"
    "# Load them into a database with `manage.py sync_assistants --file <this file>`.\n"
)

# Strict: a YAML `max_steps: "8"` or `is_entry: "no"` is a mistake worth reporting, not
# something to coerce. (An int is still accepted where a float is expected.)
STRICT = ConfigDict(extra="forbid", strict=True)


def plain(value: Any) -> Any:
    """Definitions as dicts and tuples as lists, all the way down (a deep copy)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        # `tools=("select_page")` (no comma) is a string, not a tuple: it is left for
        # validation to report rather than split into letters.
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def schema_of(cls: type, nested: dict[type, type[BaseModel]]) -> type[BaseModel]:
    """A strict pydantic model of a definition dataclass, field for field: the same types,
    constraints and defaults, with lists where the dataclass has tuples (YAML has lists)."""
    hints = get_type_hints(cls, include_extras=True)
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name == "origin":
            continue
        annotation = hints[item.name]
        if get_origin(annotation) is tuple:
            member = get_args(annotation)[0]
            annotation = list[nested.get(member, member)]  # type: ignore[index]
        if item.default_factory is not dataclasses.MISSING:
            default: Any = Field(default_factory=item.default_factory)
        else:
            default = ... if item.default is dataclasses.MISSING else plain(item.default)
        fields[item.name] = (annotation, default)
    name = cls.__name__.replace("Definition", "Schema")
    return create_model(name, __config__=STRICT, **fields)  # type: ignore[call-overload]


HandoffSchema = schema_of(HandoffDefinition, {})
ConsultSchema = schema_of(ConsultDefinition, {})
AssistantSchema = schema_of(
    AssistantDefinition, {HandoffDefinition: HandoffSchema, ConsultDefinition: ConsultSchema}
)


# --- plain data --------------------------------------------------------------------------------


def to_data(definition: AssistantDefinition) -> dict[str, Any]:
    """Every field (but the origin) as plain data: lists, not tuples."""
    return {key: plain(getattr(definition, key)) for key in ASSISTANT_KEYS}


def definition_of(cls: type, data: dict[str, Any]) -> Any:
    """A definition dataclass from validated plain data: tuples where it has tuples."""
    hints = get_type_hints(cls, include_extras=True)
    values = {}
    for key, value in data.items():
        if get_origin(hints[key]) is tuple:
            member = get_args(hints[key])[0]
            nested = dataclasses.is_dataclass(member)
            value = tuple(definition_of(member, item) if nested else item for item in value)
        values[key] = value
    return cls(**values)


def from_data(data: Any, *, origin: str, label: str) -> AssistantDefinition:
    """A validated definition; DefinitionError names `origin` and `label` on every problem."""
    try:
        valid = AssistantSchema.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError("\n".join(f"{origin}: {label}: {p}" for p in problems(exc))) from None
    definition: AssistantDefinition = definition_of(AssistantDefinition, valid.model_dump())
    return dataclasses.replace(definition, origin=origin)


def problems(exc: ValidationError) -> list[str]:
    """pydantic's errors in the words of the file: `handoffs[0].trigger: ...`."""
    found = []
    for error in exc.errors(include_url=False):
        *parents, last = error["loc"] or ("?",)
        where = location(parents)
        if error["type"] == "extra_forbidden":
            keys = NESTED.get(parents[0], ASSISTANT_KEYS) if parents else ASSISTANT_KEYS
            inside = f" in {where}" if where else ""
            found.append(f"unknown key {last!r}{inside} (known: {', '.join(keys)})")
        elif error["type"] == "missing":
            found.append(f"{location([*parents, last])}: required")
        else:
            found.append(f"{location([*parents, last])}: {error['msg']}")
    return found


def location(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def check_unique(definitions: Iterable[AssistantDefinition]) -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for definition in definitions:
        seen[definition.slug].append(definition.origin or "(no origin)")
    problems = []
    for slug, origins in seen.items():
        if len(origins) > 1:
            places = list(dict.fromkeys(origins))  # unique, in order
            problems.append(
                f"assistant {slug!r} is defined {len(origins)} times in {places[0]}"
                if len(places) == 1
                else f"assistant {slug!r} is defined more than once: in {' and '.join(places)}"
            )
    if problems:
        raise DefinitionError("\n".join(problems))


# --- YAML --------------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, *, origin: str) -> list[AssistantDefinition]:
    try:
        document = yaml.load(text, Loader=StrictLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context
        raise DefinitionError(f"{origin}: not valid YAML{at}: {problem}") from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("assistants"), list):
        raise DefinitionError(f"{origin}: expected a mapping with an `assistants:` list.")
    if extra := sorted(map(str, set(document) - {"assistants"})):
        raise DefinitionError(f"{origin}: unknown top-level key(s): {', '.join(extra)}.")
    definitions, errors = [], []
    for index, item in enumerate(document["assistants"]):
        slug = item.get("slug") if isinstance(item, dict) else None
        label = f"assistant {slug!r}" if isinstance(slug, str) else f"assistant #{index + 1}"
        try:
            definitions.append(from_data(item, origin=origin, label=label))
        except DefinitionError as exc:
            errors.append(str(exc))
    if errors:
        raise DefinitionError("\n".join(errors))
    check_unique(definitions)
    return definitions


def load_file(path: str | Path) -> list[AssistantDefinition]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot be read: {exc.strerror or exc}.") from None
    return load_yaml(text, origin=str(path))


def load_files(paths: Iterable[str | Path]) -> list[AssistantDefinition]:
    definitions = [definition for path in paths for definition in load_file(path)]
    check_unique(definitions)
    return definitions


class Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent lists under their key (PyYAML's default puts `- ` flush with the key).
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line text (instructions) as a `|` block, which reads like the text itself.
    # PyYAML falls back to a quoted string when a block cannot hold it (trailing spaces).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, _represent_str)

ASSISTANT_DEFAULTS = to_data(AssistantDefinition(slug="", name=""))
HANDOFF_DEFAULTS = plain(HandoffDefinition(target=""))
CONSULT_DEFAULTS = plain(ConsultDefinition(specialist=""))


def dump_yaml(definitions: Iterable[AssistantDefinition]) -> str:
    assistants = []
    for definition in sorted(definitions, key=lambda d: d.slug):
        data = compact(to_data(definition), ASSISTANT_DEFAULTS, keep={"slug", "name"})
        for key, defaults, keep in (
            ("handoffs", HANDOFF_DEFAULTS, {"target"}),
            ("consults", CONSULT_DEFAULTS, {"specialist"}),
        ):
            if key in data:
                data[key] = [compact(item, defaults, keep=keep) for item in data[key]]
        assistants.append(data)
    body = yaml.dump(
        {"assistants": assistants},
        Dumper=Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=float("inf"),  # never fold a long line: diffs stay line by line
    )
    return HEADER + body


def compact(data: dict[str, Any], defaults: dict[str, Any], *, keep: set[str]) -> dict[str, Any]:
    """Leave out what equals its default. Parameters (JSON schemas) get sorted keys: a
    database need not keep their order (PostgreSQL's jsonb does not)."""
    return {
        key: sorted_keys(value) if key == "parameters" else value
        for key, value in data.items()
        if key in keep or value != defaults[key]
    }


def sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(item) for item in value]
    return value
