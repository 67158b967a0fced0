"""The rules of docs/architecture.md, read off the source: which part may import which, that
nothing imports in a circle, and who writes threads, messages, runs and steps."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("chatapp", "assistants_registry")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    module_name(path): path
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
    if "migrations" not in path.parts
}


def is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import, at module level or inside a function, but those for type checkers."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and is_type_checking(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        else:
            yield from import_nodes(node)


def imports_of(name: str) -> set[str]:
    """The project's modules that `name` imports; `from package import submodule` counts as
    importing the submodule."""
    found: set[str] = set()
    for node in import_nodes(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        found |= {target for target in targets if target in MODULES}
    return found - {name}


GRAPH = {name: imports_of(name) for name in MODULES}


def inside(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def test_nothing_imports_in_a_circle():
    """Tarjan's strongly connected components: any with more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for other in GRAPH[name]:
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            component = []
            while (member := stack.pop()) != name:
                component.append(member)
            component.append(name)
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            visit(name)
    assert cycles == []


@pytest.mark.parametrize(
    ("part", "may_not_import"),
    [
        ("chatapp.models", ("chatapp",)),
        ("chatapp.compiled", ("chatapp",)),
        ("chatapp.admission", ("chatapp",)),
        ("chatapp.collector", ("chatapp",)),
        ("chatapp.providers", ("chatapp.models", "chatapp.runs", "chatapp.services")),
        (
            "chatapp.runs",
            ("chatapp.web", "chatapp.admin", "chatapp.definitions", "chatapp.management"),
        ),
        ("chatapp.services", ("chatapp.runs", "chatapp.web", "chatapp.admin")),
        ("chatapp.files", ("chatapp.runs", "chatapp.web", "chatapp.admin", "chatapp.services")),
        (
            "chatapp.sandbox",
            ("chatapp.runs", "chatapp.web", "chatapp.admin", "chatapp.services", "chatapp.models"),
        ),
        ("chatapp.web", ("chatapp.admin", "chatapp.definitions")),
        ("chatapp.definitions", ("chatapp.runs", "chatapp.web", "chatapp.admin")),
        ("assistants_registry.tools", ("chatapp",)),
        ("assistants_registry.registry", ("chatapp",)),
        ("assistants_registry.definitions", ("chatapp",)),
        ("assistants_registry.parameters", ("chatapp",)),
    ],
)
def test_each_part_imports_only_what_is_below_it(part, may_not_import):
    wrong = {
        f"{name} imports {other}"
        for name, others in GRAPH.items()
        if inside(name, part)
        for other in others
        if inside(other, *may_not_import) and not inside(other, part)
    }
    assert wrong == set()


def test_the_faces_reach_the_engine_only_through_its_front_door():
    import chatapp.runs

    deeper = set()
    for name, path in MODULES.items():
        if inside(name, "chatapp.runs"):
            continue
        for node in import_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "chatapp.runs":
                deeper |= {a.name for a in node.names if a.name not in chatapp.runs.__all__}
            modules = (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            )
            deeper |= {f"{name}: {m}" for m in modules if m and m.startswith("chatapp.runs.")}
    assert deeper == set()


WRITES = {"create", "bulk_create", "get_or_create", "update_or_create", "update", "delete"}
WRITTEN = {"Thread", "Message", "Run", "RunStep"}
WRITERS = {"chatapp.services", "chatapp.runs.store"}


def writes_through_a_manager(tree: ast.AST, written: set[str] = WRITTEN) -> Iterator[int]:
    """Lines that call create/update/delete on a query of the `written` models
    (`Run.objects.filter(...).update(...)`). Writes through an instance are not seen."""
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITES
        ):
            continue
        receiver = node.func.value
        while isinstance(receiver, ast.Call | ast.Attribute):
            receiver = receiver.func if isinstance(receiver, ast.Call) else receiver.value
        if isinstance(receiver, ast.Name) and receiver.id in written:
            yield node.lineno


def test_only_services_and_the_engines_store_write_threads_messages_and_runs():
    writers = {
        f"{name}:{line}"
        for name, path in MODULES.items()
        for line in writes_through_a_manager(ast.parse(path.read_text()))
    }
    assert {place.split(":")[0] for place in writers} == WRITERS


def test_only_files_writes_attachments():
    writers = {
        name
        for name, path in MODULES.items()
        if any(writes_through_a_manager(ast.parse(path.read_text()), {"Attachment"}))
    }
    assert writers == {"chatapp.files"}
