"""The metadata filter language: a request's ``filters`` object parsed into conditions, and each condition
as an exact predicate on a row's metadata and as a cheap LanceDB pre-filter.

``{key: value}`` matches metadata whose ``key`` equals ``value`` exactly; an operator object says more
(``$eq``, ``$ne``, ``$in``, ``$nin``, ``$exists``). Equality is by JSON value (``metadata_value_key``), so
every search path (in-memory snapshot, LanceDB index, full text) selects the same rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nexus_query.errors import InvalidFilter
from nexus_query.store.rows import canonical_json


def sql_string(value: str) -> str:
    """A string as a SQL literal for LanceDB's filters (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


FilterOp = Literal["eq", "ne", "in", "nin", "exists"]
OPERATORS: dict[str, FilterOp] = {"$eq": "eq", "$ne": "ne", "$in": "in", "$nin": "nin", "$exists": "exists"}
MAX_FILTER_KEYS = 64
MAX_FILTER_VALUES = 1000


def _by_value(value: Any) -> Any:
    """``value`` with every number that is a whole number as an exact int (so 1.0 is 1 and -0.0 is 0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_by_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _by_value(v) for k, v in value.items()}
    return value


def metadata_value_key(value: Any) -> str:
    """One string per distinct JSON value, so equality is exact: 1 and 1.0 are equal, 0 and -0.0 too,
    True and 1 are not, and integers of any size compare exactly (2**53 + 1 is not 2**53)."""
    if value is None:
        return "z"
    if isinstance(value, bool):
        return "b:1" if value else "b:0"
    if isinstance(value, (int, float)):
        number = _by_value(value)
        return f"n:{number}" if isinstance(number, int) else f"n:{number!r}"
    if isinstance(value, str):
        return "s:" + value
    return "j:" + canonical_json(_by_value(value))


def _number_spellings(value: int | float) -> set[str]:
    """How stored metadata (canonical JSON) spells every number equal to ``value``: the integer, the
    float of the same value where one exists exactly (``1.0``, ``1e+16``), and ``-0.0`` for zero."""
    number = _by_value(value)
    if not isinstance(number, int):
        return {json.dumps(number)}
    spellings = {str(number)}
    try:
        as_float = float(number)
    except OverflowError:
        return spellings
    if as_float == number:  # exact: Python compares int and float by value
        spellings.add(json.dumps(as_float))
    if number == 0:
        spellings.add("-0.0")
    return spellings


def _holds_number(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    if isinstance(value, list):
        return any(_holds_number(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_number(v) for v in value.values())
    return False


@dataclass(frozen=True)
class Condition:
    """One metadata test: ``key`` ``op`` ``values`` (values already as ``metadata_value_key``)."""

    key: str
    op: FilterOp
    values: tuple[str, ...] = ()
    raw: tuple[Any, ...] = ()  # the JSON values, for a LanceDB pre-filter
    exists: bool = True

    @property
    def selects_equal(self) -> bool:
        """Whether a row matches by holding one of ``values`` (eq, in), rather than by lacking them."""
        return self.op in ("eq", "in")

    def matches(self, metadata: dict[str, Any]) -> bool:
        if self.op == "exists":
            return (self.key in metadata) == self.exists
        present = self.key in metadata
        hit = present and metadata_value_key(metadata[self.key]) in self.values
        return hit if self.selects_equal else not hit

    def sql_superset(self) -> str | None:
        """A LanceDB predicate true for every matching row (maybe for a few more: a nested object can
        hold the same text). None when no cheap superset exists."""
        key = json.dumps(self.key, ensure_ascii=False)
        if self.op == "exists":
            return f"contains(metadata, {sql_string(key + ':')})" if self.exists else None
        if not self.selects_equal:
            return None
        needles = []
        for value in self.raw:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                # 1 and 1.0 are equal but spelled apart; the delimiter keeps 3 from matching 30
                needles += [f"{key}:{spelling}{end}" for spelling in _number_spellings(value) for end in ",}"]
            elif _holds_number(value):
                return None  # a list or object with numbers has too many spellings: matched exactly after
            else:
                needles.append(key + ":" + canonical_json(value))
        return "(" + " OR ".join(f"contains(metadata, {sql_string(n)})" for n in sorted(set(needles))) + ")"


def sql_prefilter(conditions: Sequence[Condition]) -> str | None:
    """A LanceDB ``where`` that keeps every matching row (and maybe a few more); None: no cheap one."""
    parts = [p for p in (c.sql_superset() for c in conditions) if p]
    return " AND ".join(parts) or None


def matching_rows(rows: list[dict[str, Any]], conditions: Sequence[Condition]) -> list[dict[str, Any]]:
    """The rows whose metadata (a JSON string) meets every condition exactly."""
    if not conditions:
        return rows
    return [r for r in rows if all(c.matches(json.loads(r["metadata"])) for c in conditions)]


# --- the request's filters object ---------------------------------------------------------------------

def _check_json(value: Any, key: str, depth: int = 0) -> Any:
    if depth > 16:
        raise InvalidFilter("filter value nests too deeply", key=key)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidFilter("filter numbers must be finite", key=key)
        return value
    if isinstance(value, list):
        return [_check_json(v, key, depth + 1) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _check_json(v, key, depth + 1) for k, v in value.items()}
    raise InvalidFilter(f"filter value of type {type(value).__name__} is not a JSON value", key=key)


def parse_filters(filters: Any) -> tuple[Condition, ...]:
    """``{key: value}`` matches metadata whose ``key`` equals ``value`` exactly; an operator object
    ``{key: {"$eq"|"$ne": v}}``, ``{"$in"|"$nin": [v, ...]}`` or ``{"$exists": true|false}`` says more.
    Every key must hold (AND). Anything else is ``InvalidFilter`` (400)."""
    if filters is None:
        return ()
    if not isinstance(filters, Mapping):
        raise InvalidFilter("filters must be an object of metadata key -> value", field="filters")
    if len(filters) > MAX_FILTER_KEYS:
        raise InvalidFilter(f"at most {MAX_FILTER_KEYS} filter keys", field="filters")
    conditions = []
    for key, spec in filters.items():
        if not isinstance(key, str) or not key or key.startswith("$"):
            raise InvalidFilter("filter keys must be metadata keys (non-empty, not starting with '$')",
                                field="filters", key=str(key)[:64])
        if isinstance(spec, Mapping):
            if len(spec) != 1:
                raise InvalidFilter("an operator object holds exactly one operator", key=key)
            ((op, arg),) = spec.items()
            if op not in OPERATORS:
                raise InvalidFilter(f"unknown filter operator {str(op)[:32]!r}; use one of {sorted(OPERATORS)}",
                                    key=key, operator=str(op)[:32])
            conditions.append(_condition(key, OPERATORS[op], arg))
        elif isinstance(spec, list):
            raise InvalidFilter('a list is ambiguous here: use {"$in": [...]} for any of several values, '
                                'or {"$eq": [...]} for a list value', key=key)
        else:
            conditions.append(_condition(key, "eq", spec))
    return tuple(conditions)


def _condition(key: str, op: FilterOp, arg: Any) -> Condition:
    if op == "exists":
        if not isinstance(arg, bool):
            raise InvalidFilter("$exists takes true or false", key=key)
        return Condition(key, op, exists=arg)
    if op in ("in", "nin"):
        if not isinstance(arg, list) or not arg or len(arg) > MAX_FILTER_VALUES:
            raise InvalidFilter(f"${op} takes a non-empty list of at most {MAX_FILTER_VALUES} values", key=key)
        values = [_check_json(v, key) for v in arg]
    else:
        values = [_check_json(arg, key)]
    return Condition(key, op, tuple(sorted({metadata_value_key(v) for v in values})), tuple(values))
