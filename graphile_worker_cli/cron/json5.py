"""A JSON5 reader for crontab payloads that accepts exactly what the reference's json5
(2.2.3) accepts, and gives the values Node would see.

The grammar: ``//`` and ``/* */`` comments, unquoted keys (ECMAScript identifiers, ``\\u``
escapes included), single-quoted strings, trailing commas, hexadecimal numbers, leading or
trailing decimal points, a leading ``+``, ``Infinity`` and ``NaN``; a number may not have
leading zeros (``01``). Values are Node's: every number is a double (an integral one comes
back as the ``int`` whose digits JavaScript prints, so ``12345678901234567890`` is
``12345678901234567000``), ``\\uD83D\\uDE00`` is one character, and keys that are array
indexes come first, in numeric order, as in a JavaScript object.

Nesting is limited to ``MAX_DEPTH`` levels (the reference has no limit; Python's recursion
and json modules have one).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NoReturn

from graphile_worker_cli import js_json
from graphile_worker_cli.cron import json5_identifiers

MAX_DEPTH = 128

_SPACE = frozenset(
    "\t\v\f \u00a0\ufeff\n\r\u2028\u2029\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)
_LINE_END = frozenset("\n\r\u2028\u2029")
_DIGITS = frozenset("0123456789")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_ASCII_ID_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ$_")
_ASCII_ID_CONTINUE = _ASCII_ID_START | _DIGITS | {"\u200c", "\u200d"}
_SHOWN = {"'": "\\'", "\\": "\\\\"}  # how an error message quotes these characters
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_LARGEST_PLAIN_INTEGER = 1e21  # from here on JavaScript writes integers as 1e+21


class JSON5Error(ValueError):
    """The text is not valid JSON5; the message says where."""


class JSON5DepthError(JSON5Error):
    """Valid JSON5 perhaps, but nested deeper than ``MAX_DEPTH``."""


def loads(text: str) -> Any:
    """Parse one JSON5 value from ``text``."""
    reader = _Reader(text)
    reader.skip_space()
    if reader.pos >= len(text):
        reader.fail_at_char()
    value = reader.value(0)
    reader.skip_space()
    if reader.pos != len(text):
        reader.fail_at_char()
    return value


def _table(spelled: str) -> tuple[list[int], list[int]]:
    firsts: list[int] = []
    lasts: list[int] = []
    for word in spelled.split():
        first, _, last = word.partition("-")
        firsts.append(int(first, 16))
        lasts.append(int(last or first, 16))
    return firsts, lasts


_START_TABLE = _table(json5_identifiers.ID_START)
_CONTINUE_TABLE = _table(json5_identifiers.ID_CONTINUE_ONLY)


def _in_table(char: str, table: tuple[list[int], list[int]]) -> bool:
    point = ord(char)
    index = bisect.bisect_right(table[0], point) - 1
    return index >= 0 and point <= table[1][index]


def is_id_start(char: str) -> bool:
    """Whether ``char`` may begin an unquoted key (as the reference decides)."""
    if char in _ASCII_ID_START:
        return True
    return ord(char) >= 0x80 and _in_table(char, _START_TABLE)


def is_id_continue(char: str) -> bool:
    """Whether ``char`` may follow the first character of an unquoted key."""
    if char in _ASCII_ID_CONTINUE or is_id_start(char):
        return True
    return ord(char) >= 0x80 and _in_table(char, _CONTINUE_TABLE)


def js_number(value: float) -> int | float:
    """A double as Node prints it: integral values below 1e21 as the ``int`` with the
    digits JavaScript writes (shortest round trip, then zeros), others unchanged."""
    if math.isfinite(value) and value.is_integer() and abs(value) < _LARGEST_PLAIN_INTEGER:
        return int(Decimal(repr(value)))
    return value


def _join_surrogates(text: str) -> str:
    # JavaScript strings are UTF-16: an escaped pair is one character; a lone half stays.
    if not any("\ud800" <= char <= "\udfff" for char in text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- errors ----------------------------------------------------------------------------

    def fail(self, problem: str) -> NoReturn:
        raise JSON5Error(f"{problem} at character {self.pos + 1}")

    def fail_at_char(self) -> NoReturn:
        if self.pos >= len(self.text):
            self.fail("unexpected end of input")
        char = self.text[self.pos]
        shown = _SHOWN.get(char) or (char if char.isprintable() else repr(char)[1:-1])
        self.fail(f"invalid character '{shown}'")

    # -- characters ------------------------------------------------------------------------

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        if not char:
            self.fail_at_char()
        self.pos += 1
        return char

    def expect(self, word: str) -> None:
        for char in word:
            if self.peek() != char:
                self.fail_at_char()
            self.pos += 1

    def skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in _SPACE:
                self.pos += 1
            elif char == "/":
                self.pos += 1
                self.skip_comment()
            else:
                return

    def skip_comment(self) -> None:
        text = self.text
        kind = self.peek()
        if kind == "*":
            end = text.find("*/", self.pos + 1)
            if end < 0:
                self.pos = len(text)
                self.fail("unterminated comment")
            self.pos = end + 2
        elif kind == "/":
            while self.pos < len(text) and text[self.pos] not in _LINE_END:
                self.pos += 1
        else:
            self.fail_at_char()

    # -- values ----------------------------------------------------------------------------

    def value(self, depth: int) -> Any:
        char = self.peek()
        if char == "{":
            return self.object(depth + 1)
        if char == "[":
            return self.array(depth + 1)
        if char in ("'", '"'):
            return self.string()
        for word, result in (("null", None), ("true", True), ("false", False)):
            if char == word[0]:
                self.expect(word)
                return result
        return self.number()

    def enter(self, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise JSON5DepthError(
                f"is nested deeper than {MAX_DEPTH} levels (at character {self.pos + 1}); "
                f"expected at most {MAX_DEPTH}"
            )
        self.pos += 1
        self.skip_space()

    def object(self, depth: int) -> dict[str, Any]:
        self.enter(depth)
        members: dict[str, Any] = {}
        while self.peek() != "}":
            key = self.key()
            self.skip_space()
            if self.peek() != ":":
                self.fail_at_char()
            self.pos += 1
            self.skip_space()
            members[key] = self.value(depth)
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
                self.skip_space()
            elif self.peek() != "}":
                self.fail_at_char()
        self.pos += 1
        return js_json.js_key_order(members)

    def array(self, depth: int) -> list[Any]:
        self.enter(depth)
        items: list[Any] = []
        while self.peek() != "]":
            items.append(self.value(depth))
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
                self.skip_space()
            elif self.peek() != "]":
                self.fail_at_char()
        self.pos += 1
        return items

    def key(self) -> str:
        char = self.peek()
        if char in ("'", '"'):
            return self.string()
        if char == "\\":
            first = self.identifier_escape(is_id_start)
        elif char and is_id_start(char):
            first = self.take()
        else:
            self.fail_at_char()
        parts = [first]
        while True:
            char = self.peek()
            if char == "\\":
                parts.append(self.identifier_escape(is_id_continue))
            elif char and is_id_continue(char):
                parts.append(self.take())
            else:
                return "".join(parts)

    def identifier_escape(self, allowed: Callable[[str], bool]) -> str:
        self.pos += 1  # the backslash
        if self.peek() != "u":
            self.fail_at_char()
        self.pos += 1
        escape_at = self.pos - 2
        char = self.hex_char(4)
        if not allowed(char):
            self.pos = escape_at
            self.fail("invalid identifier character")
        return char

    def hex_char(self, size: int) -> str:
        digits = ""
        for _ in range(size):
            if self.peek() not in _HEX_DIGITS:
                self.fail_at_char()
            digits += self.take()
        return chr(int(digits, 16))

    def string(self) -> str:
        quote = self.take()
        parts: list[str] = []
        while True:
            char = self.peek()
            if char == quote:
                self.pos += 1
                return _join_surrogates("".join(parts))
            if char == "\\":
                self.pos += 1
                parts.append(self.escape())
            elif char in ("\n", "\r", ""):
                self.fail_at_char()
            else:
                parts.append(char)
                self.pos += 1

    def escape(self) -> str:
        char = self.peek()
        if char in _ESCAPES:
            self.pos += 1
            return _ESCAPES[char]
        if char == "0":
            self.pos += 1
            if self.peek() in _DIGITS:
                self.fail_at_char()
            return "\0"
        if char == "x":
            self.pos += 1
            return self.hex_char(2)
        if char == "u":
            self.pos += 1
            return self.hex_char(4)
        if char in ("\n", "\u2028", "\u2029"):
            self.pos += 1
            return ""
        if char == "\r":
            self.pos += 1
            if self.peek() == "\n":
                self.pos += 1
            return ""
        if char in _DIGITS or not char:
            self.fail_at_char()
        self.pos += 1
        return char

    def number(self) -> int | float:
        sign = 1.0
        if self.peek() in ("+", "-"):
            sign = -1.0 if self.take() == "-" else 1.0
        char = self.peek()
        if char == "I":
            self.expect("Infinity")
            return sign * math.inf
        if char == "N":
            self.expect("NaN")
            return math.nan
        start = self.pos
        if char == "0" and self.text[self.pos + 1 : self.pos + 2] in ("x", "X"):
            self.pos += 2
            self.digits(_HEX_DIGITS)
            return self.double(sign, int(self.text[start + 2 : self.pos], 16))
        if char == "0":
            self.pos += 1
        elif char in _DIGITS:
            self.digits(_DIGITS)
        elif char != ".":
            self.fail_at_char()
        if self.peek() == ".":
            self.pos += 1
            if self.pos - 1 == start:  # a leading point needs a digit after it
                self.digits(_DIGITS)
            else:
                self.skip_digits()
        if self.peek() in ("e", "E"):
            self.pos += 1
            if self.peek() in ("+", "-"):
                self.pos += 1
            self.digits(_DIGITS)
        return self.double(sign, float(self.text[start : self.pos]))

    def digits(self, allowed: frozenset[str]) -> None:
        """One or more characters of ``allowed``."""
        if self.peek() not in allowed:
            self.fail_at_char()
        self.skip_digits(allowed)

    def skip_digits(self, allowed: frozenset[str] = _DIGITS) -> None:
        while self.peek() in allowed:
            self.pos += 1

    def double(self, sign: float, magnitude: int | float) -> int | float:
        try:
            value = float(magnitude)
        except OverflowError:  # a hexadecimal number beyond the largest double
            value = math.inf
        return js_number(sign * value)
