"""JSON text exactly as JavaScript's ``JSON.stringify`` writes it, so a payload gw stores is
byte for byte what a Node worker would store for the same value.

What differs from ``json.dumps``:

- no spaces, and characters outside ASCII written as they are (UTF-8 in the database);
  a lone UTF-16 surrogate is escaped (``"\\ud800"``, lower-case hex) and a high surrogate
  followed by a low one is the one character they make, as in a JavaScript string;
- numbers as ``Number.prototype.toString`` writes them: ``1`` for ``1.0``, ``0.00001`` for
  ``1e-05``, ``1e+21``, ``0`` for ``-0.0``; the digits are the shortest that read back as
  the same double (Python's ``repr`` finds the same ones);
- object keys that are array indexes (``"0"``..``"4294967294"``) first, in numeric order,
  then the others in insertion order: the order a JavaScript object keeps.

Integers are written exactly, whatever their size. Below 2**53 that is what JavaScript
writes too; beyond it Node has already rounded the value to a double when it read it
(``12345678901234567890`` becomes ``12345678901234567000``), and gw keeps the value it was
given rather than round it.

``NaN`` and the infinities are an error by default (PostgreSQL's json has no such numbers);
``non_finite_as_null=True`` writes ``null`` for them, as ``JSON.stringify`` does.
"""

from __future__ import annotations

import json.encoder
import math
import re
from collections.abc import Callable
from itertools import repeat
from typing import Any, Final

MAX_DEPTH: Final = 256
"""Deepest nesting written. Beyond it the value is refused (a value that contains itself
ends here too): writing takes two Python frames per level, and Python stops at 1,000."""

MAX_ARRAY_INDEX: Final = 2**32 - 2
_ARRAY_INDEX = re.compile(r"(?:0|[1-9][0-9]{0,9})\Z")
_SURROGATES = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")

_quote: Callable[[str], str] = (
    json.encoder.c_encode_basestring  # type: ignore[attr-defined]
    or json.encoder.py_encode_basestring
)
"""``"text"`` with the escapes JSON.stringify uses: ``\\"``, ``\\\\``, ``\\b``, ``\\f``,
``\\n``, ``\\r``, ``\\t``, other control characters as ``\\u00xx``; the rest as is."""


class NotJSONError(ValueError):
    """The value cannot be written as JSON; ``reason`` says why."""

    def __init__(self, reason: str, unsupported: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unsupported_type: type | None = (
            type(unsupported) if unsupported is not None else None
        )
        """The type of the value that is not a JSON value, when that is the problem."""


def stringify(value: Any, *, non_finite_as_null: bool = False) -> str:
    """``JSON.stringify(value)`` for a value made of dicts (string keys), lists, tuples,
    strings, integers, floats, booleans and None; raises ``NotJSONError`` otherwise."""
    try:
        text = (_WRITE_NULLS if non_finite_as_null else _WRITE)(value, 0)
    except RecursionError:  # called from deep in a stack: the limit is nearer
        raise _too_deep() from None
    if not text.isascii() and _SURROGATES.search(text) is not None:
        text = _SURROGATES.sub(_surrogates, text)
    return text


def is_array_index(key: str) -> bool:
    """Whether a JavaScript object orders ``key`` as an array index (before other keys)."""
    return _ARRAY_INDEX.match(key) is not None and int(key) <= MAX_ARRAY_INDEX


def js_key_order(members: dict[str, Any]) -> dict[str, Any]:
    """``members`` in the order a JavaScript object keeps its keys: array indexes first,
    ascending, then the other keys in insertion order."""
    indexes = [key for key in members if is_array_index(key)]
    if not indexes:
        return members
    ordered = {key: members[key] for key in sorted(indexes, key=int)}
    ordered.update((key, value) for key, value in members.items() if key not in ordered)
    return ordered


def number_text(value: float) -> str:
    """A finite double as JavaScript's ``Number.prototype.toString`` writes it."""
    if value == 0:
        return "0"  # -0 included
    text = float.__repr__(value)
    if "e" not in text:
        # repr's fixed notation (1e-4 <= |value| < 1e16) lies within JavaScript's, with the
        # same digits; only an integral value's ".0" goes.
        return text[:-2] if text.endswith(".0") else text
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    spelled = whole + fraction
    digits = spelled.lstrip("0")
    # value = 0.<digits> * 10**point, i.e. JavaScript's s * 10**(n - k) with point = n.
    point = len(whole) + (int(exponent) if exponent else 0) - (len(spelled) - len(digits))
    digits = digits.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        return sign + digits + "0" * (point - count)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    power = point - 1
    shown = digits if count == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{shown}e{'+' if power >= 0 else '-'}{abs(power)}"


def _surrogates(match: re.Match[str]) -> str:
    found = match.group()
    if len(found) == 2:  # a pair: the character it encodes, as in a JavaScript string
        return found.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    return f"\\u{ord(found):04x}"


def _make_writer(non_finite_as_null: bool) -> Callable[[Any, int], str]:
    """``write(value, depth)``: the JSON text of ``value`` nested ``depth`` levels deep.
    Closures over local names: this is the hot path of every ``add_job``."""
    quote = _quote
    int_text = int.__repr__
    isfinite = math.isfinite

    def number(value: float) -> str:
        if isfinite(value):
            return number_text(value)
        if non_finite_as_null:
            return "null"
        raise NotJSONError(
            f"{float.__repr__(value)} (a {type(value).__name__}) is not a JSON number"
        )

    def write(value: Any, depth: int) -> str:
        kind = type(value)
        if kind is str:
            return quote(value)
        if kind is int:
            return int_text(value)
        if kind is dict:
            return members(value, depth)
        if kind is list or kind is tuple:
            return items(value, depth)
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if kind is float:
            return number(value)
        return subclass(value, depth)

    def subclass(value: Any, depth: int) -> str:
        # Enums and other subclasses of the JSON types: written as their base value.
        if isinstance(value, str):
            return quote(value)
        if isinstance(value, int):
            return int_text(value)
        if isinstance(value, float):
            return number(value)
        if isinstance(value, dict):
            return members(value, depth)
        if isinstance(value, list | tuple):
            return items(value, depth)
        raise NotJSONError(f"a {type(value).__name__} is not a JSON value", value)

    def items(values: list[Any] | tuple[Any, ...], depth: int) -> str:
        if depth >= MAX_DEPTH:
            raise _too_deep()
        # map() rather than a comprehension: no extra Python frame per level of nesting.
        return "[" + ",".join(map(write, values, repeat(depth + 1))) + "]"

    def members(value: dict[Any, Any], depth: int) -> str:
        if depth >= MAX_DEPTH:
            raise _too_deep()
        try:
            # Keys before ":" may be array indexes (digits; "" and punctuation are false
            # alarms that js_key_order sorts out).
            if value and min(value) < ":":
                value = js_key_order(value)
            depth += 1
            parts: list[str] = []
            add = parts.append
            for key, item in value.items():  # a loop, not a comprehension: see items()
                add(quote(key) + ":" + write(item, depth))
        except TypeError:
            bad = [key for key in value if not isinstance(key, str)]
            if not bad:
                raise
            raise NotJSONError(f"object key {bad[0]!r} is not a string") from None
        return "{" + ",".join(parts) + "}"

    return write


def _too_deep() -> NotJSONError:
    return NotJSONError(f"nested more than {MAX_DEPTH} levels deep (or contains itself)")


_WRITE = _make_writer(non_finite_as_null=False)
_WRITE_NULLS = _make_writer(non_finite_as_null=True)
