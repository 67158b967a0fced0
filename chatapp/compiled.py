"""Querysets compiled to SQL once, for the reads every answer makes before its first word.

Django builds and compiles a queryset anew each time it runs. For reading a turn that was
~26x what SQLite takes to run the SQL (bench/turn_read.py); under load every answer pays it
before its first token. A `Compiled` queryset is built and compiled once per process (with
marker values where its parameters go); each call runs that SQL with its own values, and
Django's own iterable makes the models from the rows, as for any queryset: select_related,
annotations and the fields' converters included.

This leans on how a queryset runs (`Query.get_compiler`, `SQLCompiler.as_sql` and the
state `as_sql` leaves on its compiler): tests/test_compiled.py compares every result with
the plain queryset's, so a Django that changes it fails there first.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import Field, Model, QuerySet
from django.db.models.sql.compiler import SQLCompiler


class Compiled[M: Model]:
    """`Compiled(build, run_id=Run._meta.pk)`, then `.list(run_id=...)`: the rows of
    `build(run_id=...)`, on the default database (`.count(run_id=...)`: how many). Each named
    value goes into the SQL as the field converts it for a lookup.

    The queryset's shape must not depend on the values (no `if` on them, no list of them),
    and each value must reach the SQL unchanged, as a parameter (an exact lookup, or a
    comparison): a value that does not is refused when the queryset is compiled."""

    def __init__(self, build: Callable[..., QuerySet[M]], **fields: Field[Any, Any]) -> None:
        self.build, self.fields = build, fields
        self.template: _Template[M] | None = None
        self.lock = threading.Lock()

    def list(self, **values: Any) -> list[M]:
        if None in values.values():  # SQL says IS NULL for it: another query altogether
            return list(self.build(**values))
        template, params, connection = self.with_values(values)
        compiler = copy.copy(template.compiler)  # its select and column maps, as compiled
        compiler.connection = connection  # this thread's
        compiler.as_sql = lambda *args, **kwargs: (template.sql, params)  # type: ignore[method-assign]
        queryset = template.queryset.all()
        queryset.query.get_compiler = lambda *args, **kwargs: compiler  # type: ignore[method-assign]
        return list(queryset)

    def count(self, **values: Any) -> int:
        """How many rows `.list(**values)` would give, counted by the database."""
        if None in values.values():
            return self.build(**values).count()
        template, params, connection = self.with_values(values)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM ({template.sql}) counted", params)
            return int(cursor.fetchone()[0])

    def with_values(self, values: dict[str, Any]) -> tuple[_Template[M], list[Any], Any]:
        """The compiled query, its parameters with these values, and this thread's
        connection."""
        template = self.template or self.compile()
        connection = connections[DEFAULT_DB_ALIAS]
        params = list(template.params)
        for index, name in template.slots.items():
            params[index] = for_lookup(self.fields[name], values[name], connection)
        return template, params, connection

    def compile(self) -> _Template[M]:
        with self.lock:
            if self.template is None:
                connection = connections[DEFAULT_DB_ALIAS]
                markers = {name: marker(field) for name, field in self.fields.items()}
                queryset = self.build(**markers).using(DEFAULT_DB_ALIAS)
                compiler = queryset.query.get_compiler(using=DEFAULT_DB_ALIAS)
                sql, params = compiler.as_sql()
                names = {
                    for_lookup(field, markers[name], connection): name
                    for name, field in self.fields.items()
                }
                slots = {i: names[p] for i, p in enumerate(params) if _hashable(p) and p in names}
                if set(slots.values()) != set(self.fields):
                    missing = sorted(set(self.fields) - set(slots.values()))
                    raise ValueError(f"{missing} not parameters of their own in: {sql}")
                self.template = _Template(queryset, compiler, sql, tuple(params), slots)
        return self.template


@dataclass(frozen=True)
class _Template[M: Model]:
    queryset: QuerySet[M]
    compiler: SQLCompiler  # as `as_sql` left it: what the rows' columns are
    sql: str
    params: tuple[Any, ...]  # the markers' among them, replaced on each call
    slots: dict[int, str]  # index in params -> the value's name


def marker(field: Field[Any, Any]) -> Any:
    """A value of the field's type that no caller passes."""
    if isinstance(field, models.ForeignKey):
        return marker(field.target_field)
    if isinstance(field, models.UUIDField):
        return uuid.uuid4()
    if isinstance(field, models.IntegerField):  # AutoField and BigAutoField too
        return -1 - uuid.uuid4().int % 2**31
    if isinstance(field, models.CharField | models.TextField):
        return f"marker-{uuid.uuid4().hex}"
    if isinstance(field, models.DateTimeField):
        return datetime(1, 1, 2, tzinfo=UTC) + timedelta(microseconds=uuid.uuid4().int % 10**10)
    raise ValueError(f"No marker for a {type(field).__name__}")


def for_lookup(field: Field[Any, Any], value: Any, connection: Any) -> Any:
    """The value as an exact lookup on `field` hands it to the database."""
    return field.get_db_prep_value(field.get_prep_value(value), connection, prepared=True)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
