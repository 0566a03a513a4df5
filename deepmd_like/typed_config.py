"""Typed configuration: plain dictionaries (from YAML or JSON) into dataclasses.

Every input file of the package (training inputs, MD decks) is described by
dataclasses whose annotations say what each key holds; :func:`build` checks
a parsed file against them and names the offending key path in a one-line
:class:`~deepmd_like.errors.UserError`, suggesting the nearest known key for
a misspelt one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Union

from deepmd_like.errors import UserError


def dotted(path: str, key: str) -> str:
    """``a.b`` key paths (the default)."""
    return f"{path}.{key}" if path else key


@dataclass(frozen=True)
class _Options:
    join: Callable[[str, str], str]
    skip_comments: bool
    hidden: tuple[str, ...]
    opaque: tuple[type, ...]
    none_is_empty: bool


def type_name(tp: Any) -> str:
    """How an annotation reads in an error message: ``a list of an integer``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true/false",
    }.get(tp, str(tp))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any, path: str, options: _Options) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, path, options)
            except _Mismatch:
                continue
        raise _Mismatch
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        (item_tp,) = typing.get_args(tp)
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_coerce(item, item_tp, f"{path}[{i}]", options))
            except _Mismatch:
                raise UserError(
                    f"{path.strip()}[{i}] must be {type_name(item_tp)}, got {item!r}"
                ) from None
        return out
    if tp in options.opaque:
        # Types that validate themselves after the generic pass.
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        if value is None and options.none_is_empty:
            value = {}
        if not isinstance(value, dict):
            raise _Mismatch
        return _build(tp, value, path, options)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise UserError(
                    f"{path.strip()} must be a finite number, got {value!r}"
                )
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"unsupported annotation {tp!r} at {path}")


def _build(cls: type, data: dict[str, Any], path: str, options: _Options) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in options.hidden]
    kwargs = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise UserError(f"{path.rstrip(':')}: keys must be strings, got {key!r}")
        if options.skip_comments and key.startswith("_"):
            continue
        where = options.join(path, key)
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(names)
            raise UserError(
                f"unknown key {where.strip()!r}{hint} (known keys: {known})"
            )
        try:
            kwargs[key] = _coerce(value, hints[key], where, options)
        except _Mismatch:
            raise UserError(
                f"{where.strip()} must be {type_name(hints[key])}, got {value!r}"
            ) from None
    return cls(**kwargs)


def build(
    cls: type,
    data: dict[str, Any],
    path: str = "",
    *,
    join: Callable[[str, str], str] = dotted,
    skip_comments: bool = False,
    hidden: tuple[str, ...] = (),
    opaque: tuple[type, ...] = (),
    none_is_empty: bool = False,
) -> Any:
    """Build dataclass ``cls`` from ``data``, checking every key and type.

    Parameters
    ----------
    cls : type
        A dataclass whose field annotations (int, float, str, bool, lists,
        unions, nested dataclasses) describe the accepted values.
    data : dict
        The parsed file or section.
    path : str
        Key path of ``data`` for error messages (``""`` for the top level).
    join : callable
        Makes the key path of a child from its parent's path and key.
    skip_comments : bool
        Ignore keys starting with ``_`` (DeePMD-kit's ``_comment``).
    hidden : tuple of str
        Fields that a file may not set (filled in by the program).
    opaque : tuple of type
        Field types left to their own validation: a value for them is a
        type mismatch here, so callers handle those fields before ``build``.
    none_is_empty : bool
        Read ``key:`` with no value (YAML null) as an empty mapping for a
        nested dataclass, i.e. all its defaults.

    Raises
    ------
    UserError
        Unknown key (with the nearest known key), or a value of the wrong type.
    """
    options = _Options(join, skip_comments, hidden, opaque, none_is_empty)
    return _build(cls, data, path, options)
