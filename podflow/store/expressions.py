"""The little language of :mod:`podflow.store.transitions`: expressions over a run's
fields and a write's arguments, and conditions over them -- what every backend
knows how to render (SQL text, MongoDB filters) and, for MongoDB's
compare-and-set, how to evaluate in Python."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..states import RunStatus

__all__ = [
    "And",
    "Case",
    "Coalesce",
    "Cond",
    "Dec",
    "Eq",
    "Expr",
    "Field",
    "Ge",
    "In",
    "Inc",
    "Lit",
    "Lt",
    "Or",
    "Param",
    "ParamKind",
    "Truthy",
    "evaluate",
    "fields_of",
    "holds",
    "params_of",
]

#: how a parameter is encoded by a backend
ParamKind = Literal["text", "int", "time", "json"]


# -- expressions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """A column (document field) of the run, as it was before the write."""

    name: str


@dataclass(frozen=True, slots=True)
class Param:
    """An argument of the write."""

    name: str
    kind: ParamKind = "text"


@dataclass(frozen=True, slots=True)
class Lit:
    """A constant: a status, a boolean, None or a string."""

    value: str | bool | None


@dataclass(frozen=True, slots=True)
class Inc:
    """``field + 1``."""

    field: str


@dataclass(frozen=True, slots=True)
class Dec:
    """``field - 1``."""

    field: str


@dataclass(frozen=True, slots=True)
class Coalesce:
    """The field's value, or ``default`` where it is null."""

    field: str
    default: Param


@dataclass(frozen=True, slots=True)
class Case:
    """The value of the first branch whose condition holds, else ``default``."""

    branches: tuple[tuple[Cond, Lit | Param], ...]
    default: Lit | Param


Expr = Field | Param | Lit | Inc | Dec | Coalesce | Case


# -- conditions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Eq:
    field: str
    value: Param | Lit


@dataclass(frozen=True, slots=True)
class Lt:
    """``field < value``; never true where the field is null."""

    field: str
    value: Param


@dataclass(frozen=True, slots=True)
class Ge:
    """``field >= value``; never true where the field is null."""

    field: str
    value: Param


@dataclass(frozen=True, slots=True)
class In:
    """The status is one of ``statuses``."""

    field: str
    statuses: tuple[RunStatus, ...]


@dataclass(frozen=True, slots=True)
class Truthy:
    """A boolean field is ``value``."""

    field: str
    value: bool = True


@dataclass(frozen=True, slots=True)
class And:
    conds: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class Or:
    conds: tuple[Cond, ...]


Cond = Eq | Lt | Ge | In | Truthy | And | Or


def and_(*conds: Cond) -> Cond:
    return conds[0] if len(conds) == 1 else And(conds)


def fields_of(expr: Expr | Cond) -> Iterator[str]:
    match expr:
        case Field(name) | Inc(name) | Dec(name) | Coalesce(name, _):
            yield name
        case Case(branches, _):
            for cond, _value in branches:
                yield from fields_of(cond)
        case Eq(name, _) | Lt(name, _) | Ge(name, _) | In(name, _) | Truthy(name, _):
            yield name
        case And(conds) | Or(conds):
            for cond in conds:
                yield from fields_of(cond)


def params_of(part: Expr | Cond) -> Iterator[Param]:
    match part:
        case Param():
            yield part
        case Coalesce(_, default):
            yield default
        case Case(branches, default):
            for cond, value in branches:
                yield from params_of(cond)
                yield from params_of(value)
            yield from params_of(default)
        case Eq(_, value) | Lt(_, value) | Ge(_, value):
            if isinstance(value, Param):
                yield value
        case And(conds) | Or(conds):
            for cond in conds:
                yield from params_of(cond)


# -- evaluation in Python (MongoDB's compare-and-set computes values with it) ------------


def _operand(value: Param | Lit, args: Mapping[str, Any]) -> Any:
    return args[value.name] if isinstance(value, Param) else value.value


def holds(cond: Cond, row: Mapping[str, Any], args: Mapping[str, Any]) -> bool:
    """Whether ``row`` meets ``cond`` (nulls compare false, as in SQL)."""
    match cond:
        case Eq(name, value):
            return bool(row.get(name) == _operand(value, args))
        case Lt(name, value):
            have = row.get(name)
            return have is not None and bool(have < args[value.name])
        case Ge(name, value):
            have = row.get(name)
            return have is not None and bool(have >= args[value.name])
        case In(name, statuses):
            return row.get(name) in {str(s) for s in statuses}
        case Truthy(name, value):
            return bool(row.get(name)) is value
        case And(conds):
            return all(holds(c, row, args) for c in conds)
        case Or(conds):
            return any(holds(c, row, args) for c in conds)
    raise TypeError(f"not a condition: {cond!r}")


def evaluate(expr: Expr, row: Mapping[str, Any], args: Mapping[str, Any]) -> Any:
    """The value ``expr`` takes for ``row`` (read before the write)."""
    match expr:
        case Field(name):
            return row.get(name)
        case Param(name, _):
            return args[name]
        case Lit(constant):
            return constant
        case Inc(name):
            return int(row.get(name) or 0) + 1
        case Dec(name):
            return int(row.get(name) or 0) - 1
        case Coalesce(name, default):
            have = row.get(name)
            return args[default.name] if have is None else have
        case Case(branches, default):
            for cond, chosen in branches:
                if holds(cond, row, args):
                    return _operand(chosen, args)
            return _operand(default, args)
    raise TypeError(f"not an expression: {expr!r}")
