"""Syntax tree -> mask operations over a catalog's rows, compiled once per (version, filter).

Semantics (those of the reference service):

- ``INCLUDE`` keeps only the matching rows, ``EXCLUDE`` removes them. Chained with ``|``,
  includes are OR-ed, excludes are OR-ed, and the answer is (includes, or every row when there
  are none) minus excludes; the order of the expressions does not matter.
- A condition on a field that a row lacks is false: such a row never matches an ``INCLUDE``
  condition on it, and an ``EXCLUDE`` condition on it never removes it.
- Categorical fields hold several values: ``IN``/``=`` match when any of them is listed,
  ``NOT IN``/``!=`` when the row has values and none is listed.
- ``Interactions`` conditions in an ``ItemID`` filter read the current user's latest
  ``serving.history_length`` events, whatever the model scores from (see
  ``serving/history.py``): an event matches when the whole ``WHERE``
  holds for it, and the items of matching events match. In a ``UserID`` filter they select the
  users with at least one matching event. ``EVENT_TYPE`` compares case-insensitively and
  ``"*"`` stands for every event type.
- An expression whose ``IF`` fails (no known user, a missing field, a false condition) is left
  out. An ``INCLUDE`` expression needs values for all its parameters (``InvalidInput``
  otherwise); an ``EXCLUDE`` expression whose parameters have no values is left out.
- ``CurrentItem.F`` is the request's item (similar items only); ``CurrentUser.F`` as a value is
  the current user's field.

Cost: the masks of every expression that does not read the current user's events are cached by
what they depend on (parameter values, current item, current-user values), so a repeated request
pays a dictionary lookup; the user's events cost O(events). The answer is a :class:`Selection`:
a shared read-only ``allowed`` mask (with its index form, computed once along with it) and a
small ``excluded`` index array on top of it.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from tastebud.errors import InvalidInput
from tastebud.filters.catalog import BoolArray, Catalog, EventTable, IntArray
from tastebud.filters.selection import Selection, index_form
from tastebud.filters.syntax import (
    And,
    Condition,
    Expression,
    Field,
    Filter,
    Param,
    Predicate,
    Target,
    conditions,
    parameters,
)
from tastebud.filters.validate import FieldKind, Schemas, literal_value, resolve, validate
from tastebud.filters.values import (
    NUMERIC,
    clean_values,
    compare_column,
    convert,
    field_values,
    holds,
)
from tastebud.store.base import Event

_NO_ROWS = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True, slots=True)
class FilterRequest:
    """What one request brings to a filter.

    Attributes:
        values: ``$PARAMETER`` name (with or without ``$``) -> its values (a list, or one
            string of comma-separated, optionally quoted values as the reference sends them).
        user: the current user's fields (None: anonymous, or no profile).
        events: the current user's recent events.
        event_items: the version's indexes of the events' items (-1: unknown), when the caller
            has them already (serving maps the history once, for the model and the filter).
        item_id: the current item (similar-items requests).
    """

    values: Mapping[str, Sequence[str] | str] = field(default_factory=dict)
    user: Mapping[str, Any] | None = None
    events: Sequence[Event] = ()
    event_items: IntArray | None = None
    item_id: str | None = None


class Sources(Protocol):
    """Where a compiled filter reads its data (built lazily, once per version)."""

    def catalog(self, kind: Literal["items", "users"]) -> Catalog: ...

    def interactions(self) -> EventTable:
        """Every interaction of the group; ``rows`` point into the users catalog."""
        ...


@dataclass
class _Bound:
    request: FilterRequest
    values: dict[str, list[str]]
    item_row: int | None


Resolve = Callable[[_Bound], list[Any] | None]
# (allowed, excluded by the cached expressions, allowed's index form)
_Masks = tuple[BoolArray | None, BoolArray | None, tuple[bool, IntArray] | None]
Test = Callable[[Catalog | EventTable, _Bound], BoolArray]


@dataclass(frozen=True)
class _Part:
    """One compiled expression."""

    position: int
    include: bool
    live: bool  # reads the current user's events: evaluated per request, never cached
    test: Test  # the WHERE clause over a catalog or an event table
    when: Callable[[_Bound], bool] | None  # the IF clause
    params: tuple[str, ...]
    key: Callable[[_Bound], Hashable]  # what a cached mask depends on


class CompiledFilter:
    """A filter ready to answer requests over one version's catalog. Thread-safe.

    Raises (on construction):
        InvalidInput: the tree does not fit the schemas (see :mod:`.validate`).
    """

    def __init__(
        self, tree: Filter, schemas: Schemas, sources: Sources, *, name: str = "filter",
        cache_size: int = 256,
    ) -> None:  # fmt: skip
        validate(tree, schemas)
        self.name = name
        self.tree = tree
        self.target: Target = tree.expressions[0].target
        self.parameters = tuple(parameters(tree))
        self._sources = sources
        self._schemas = schemas
        self._parts = [self._part(i, e) for i, e in enumerate(tree.expressions, 1)]
        refs = [c.operand for e in tree.expressions for c in conditions(e.where)]
        self.needs_item = any(isinstance(r, Field) and r.dataset == "CurrentItem" for r in refs)
        self.needs_user = any(e.when for e in tree.expressions) or any(
            isinstance(r, Field) and r.dataset == "CurrentUser" for r in refs
        )
        self.needs_events = any(p.live for p in self._parts)
        self._cache: OrderedDict[Hashable, _Masks] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def kind(self) -> Literal["items", "users"]:
        return "items" if self.target == "ItemID" else "users"

    def select(self, request: FilterRequest) -> Selection:
        """The rows this request may return.

        Raises:
            InvalidInput: unknown or missing parameter values, values of the wrong type, a
                ``CurrentItem`` filter without a current item.
        """
        catalog = self._sources.catalog(self.kind)
        bound = self._bind(request, catalog)
        active = [p for p in self._parts if self._active(p, bound)]
        has_includes = any(p.include for p in active)
        static = [p for p in active if not p.live]
        key = (has_includes, tuple((p.position, p.key(bound)) for p in static))
        allowed, excluded, index = self._cached(
            key, lambda: self._static(static, has_includes, bound)
        )
        live = [p for p in active if p.live]
        if not live:
            return Selection(allowed, _NO_ROWS, catalog, index)
        ids = [e.item_id for e in request.events]
        known = request.event_items
        rows = catalog.rows(ids) if known is None else catalog.rows(ids, indexes=known)
        events = EventTable.from_events(request.events, rows)
        found = {p.position: events.rows_where(p.test(events, bound)) for p in live}
        included = [found[p.position] for p in live if p.include]
        if included:
            rows = np.concatenate(included)
            if excluded is not None:
                rows = rows[~excluded[rows]]
            allowed = np.zeros(catalog.size, np.bool_) if allowed is None else allowed.copy()
            allowed[rows] = True
            index = index_form(allowed)
        removed = [found[p.position] for p in live if not p.include]
        blocked = np.unique(np.concatenate(removed)) if removed else _NO_ROWS
        return Selection(allowed, blocked, catalog, index)

    # request binding --------------------------------------------------------------------------
    def _bind(self, request: FilterRequest, catalog: Catalog) -> _Bound:
        values = clean_values(request.values, self.parameters, self.name)
        item_row = None
        if self.needs_item:
            if request.item_id is None:
                raise InvalidInput(
                    f"filter {self.name!r} uses CurrentItem: only similar-items requests have a "
                    "current item"
                )
            item_row = self._sources.catalog("items").row(request.item_id)
        return _Bound(request, values, item_row)

    def _active(self, part: _Part, bound: _Bound) -> bool:
        missing = [p for p in part.params if not bound.values.get(p)]
        if missing and part.include:
            raise InvalidInput(
                f"filterValues: no value for ${missing[0]}; filter {self.name!r} needs values "
                f"for {', '.join('$' + p for p in missing)} (INCLUDE expression {part.position})"
            )
        return not missing and (part.when is None or part.when(bound))

    # cached masks -----------------------------------------------------------------------------
    def _cached(
        self, key: Hashable, build: Callable[[], tuple[BoolArray | None, BoolArray | None]]
    ) -> _Masks:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        allowed, excluded = build()
        index = None if allowed is None else index_form(allowed)
        for array in (allowed, excluded, None if index is None else index[1]):
            if array is not None:
                array.flags.writeable = False
        built = (allowed, excluded, index)
        with self._lock:
            self._cache[key] = built
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return built

    def _static(
        self, parts: list[_Part], has_includes: bool, bound: _Bound
    ) -> tuple[BoolArray | None, BoolArray | None]:
        """(allowed, excluded) from the expressions that do not read the user's events."""
        size = self._sources.catalog(self.kind).size
        includes = [self._mask(p, bound) for p in parts if p.include]
        excludes = [self._mask(p, bound) for p in parts if not p.include]
        excluded = functools.reduce(np.logical_or, excludes) if excludes else None
        if has_includes:
            allowed = (functools.reduce(np.logical_or, includes) if includes
                       else np.zeros(size, np.bool_))  # fmt: skip
            return (allowed if excluded is None else allowed & ~excluded), excluded
        return (None if excluded is None else ~excluded), excluded

    def _mask(self, part: _Part, bound: _Bound) -> BoolArray:
        expression = self.tree.expressions[part.position - 1]
        if self.target == "UserID" and _dataset(expression) == "Interactions":
            events = self._sources.interactions()
            mask = np.zeros(self._sources.catalog("users").size, np.bool_)
            mask[events.rows_where(part.test(events, bound))] = True
            return mask
        return part.test(self._sources.catalog(self.kind), bound)

    # compilation ------------------------------------------------------------------------------
    def _part(self, position: int, expression: Expression) -> _Part:
        where_params = tuple(parameters(Expression(expression.action, expression.target,
                                                   expression.where)))  # fmt: skip
        refs = [c.operand for c in conditions(expression.where) if isinstance(c.operand, Field)]
        uses_item = any(r.dataset == "CurrentItem" for r in refs)
        user_fields = tuple(resolve(r, self._schemas)[0] for r in refs
                            if r.dataset == "CurrentUser")  # fmt: skip

        def key(bound: _Bound) -> Hashable:
            user = bound.request.user or {}
            return (
                tuple(tuple(bound.values[p]) for p in where_params),
                bound.item_row if uses_item else None,
                tuple(repr(user.get(f)) for f in user_fields),
            )

        return _Part(
            position=position,
            include=expression.action == "INCLUDE",
            live=expression.target == "ItemID" and _dataset(expression) == "Interactions",
            test=self._predicate(expression.where),
            when=self._when(expression.when) if expression.when else None,
            params=tuple(parameters(expression)),
            key=key,
        )

    def _predicate(self, predicate: Predicate) -> Test:
        if isinstance(predicate, Condition):
            return self._condition(predicate)
        tests = [self._predicate(term) for term in predicate.terms]
        join = np.logical_and if isinstance(predicate, And) else np.logical_or

        def combined(columns: Catalog | EventTable, bound: _Bound) -> BoolArray:
            return functools.reduce(join, (t(columns, bound) for t in tests))

        return combined

    def _condition(self, condition: Condition) -> Test:
        name, kind = resolve(condition.field, self._schemas)
        operand = self._operand(condition, kind)
        operator = condition.operator
        fold = condition.field.dataset == "Interactions" and name == "EVENT_TYPE"
        where = f"{condition.field.dataset}.{condition.field.name} {operator}"

        def test(columns: Catalog | EventTable, bound: _Bound) -> BoolArray:
            wanted = operand(bound)
            if not wanted:
                return np.zeros(columns.size, np.bool_)
            if kind in NUMERIC:
                return compare_column(columns.numbers(name), operator, wanted, where)
            if fold:
                wanted = [str(w).lower() for w in wanted]
                if "*" in wanted:
                    return np.full(columns.size, operator in ("IN", "="), np.bool_)
            column = columns.strings(name, split=kind == "categorical")
            hit = column.any_of(wanted)
            return hit if operator in ("IN", "=") else column.present & ~hit

        return test

    def _operand(self, condition: Condition, kind: FieldKind) -> Resolve:
        operand = condition.operand
        where = f"{condition.field.dataset}.{condition.field.name}"
        if isinstance(operand, Field):
            return self._reference(operand)
        literals = [literal_value(v, kind, name=where, where=f"filter {self.name!r}")
                    for v in operand if not isinstance(v, Param)]  # fmt: skip
        params = [v.name for v in operand if isinstance(v, Param)]
        if not params:
            return lambda bound: literals

        def resolved(bound: _Bound) -> list[Any]:
            found = [convert(value, kind, p) for p in params for value in bound.values[p]]
            return literals + found

        return resolved

    def _reference(self, operand: Field) -> Resolve:
        name, kind = resolve(operand, self._schemas)
        if operand.dataset == "CurrentItem":
            items = self._sources

            def current_item(bound: _Bound) -> list[Any] | None:
                if bound.item_row is None:
                    return None
                return field_values(items.catalog("items").value(bound.item_row, name), kind)

            return current_item
        return lambda bound: field_values((bound.request.user or {}).get(name), kind)

    def _when(self, checks: tuple[Condition, ...]) -> Callable[[_Bound], bool]:
        compiled = []
        for condition in checks:
            name, kind = resolve(condition.field, self._schemas)
            compiled.append((name, kind, condition.operator, self._operand(condition, kind)))

        def check(bound: _Bound) -> bool:
            user = bound.request.user
            if user is None:
                return False
            for name, kind, operator, operand in compiled:
                have, wanted = field_values(user.get(name), kind), operand(bound)
                if not have or not wanted or not holds(operator, have, wanted):
                    return False
            return True

        return check


# helpers --------------------------------------------------------------------------------------
def _dataset(expression: Expression) -> str:
    return conditions(expression.where)[0].field.dataset
