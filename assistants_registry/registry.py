"""The explicit registry of what assistants can do. A duplicate name is an error, never a
silent overwrite: two tools answering to one name would make traces lie."""

from __future__ import annotations

from collections.abc import Iterator

from assistants_registry.tools import ToolSpec


class DuplicateToolError(ValueError):
    pass


class UnknownToolError(KeyError):
    pass


class Registry:
    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}

    def register(self, *specs: ToolSpec) -> None:
        for spec in specs:
            if not isinstance(spec, ToolSpec):
                raise TypeError(f"{spec!r} is not a ToolSpec; decorate it with @tool.")
            if spec.name in self._tools:
                raise DuplicateToolError(f"A tool named {spec.name!r} is already registered.")
            self._tools[spec.name] = spec

    def unregister(self, name: str) -> None:
        self._tools.pop(name, None)

    def get(self, name: str) -> ToolSpec:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(sorted(self._tools.values(), key=lambda spec: spec.name))

    def names(self) -> list[str]:
        return sorted(self._tools)


# The project's registry; apps register their tools in AppConfig.ready().
registry = Registry()
