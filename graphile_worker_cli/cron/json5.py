"""A small JSON5 reader for crontab payloads (the reference parses them as JSON5).

Covers what people write in a crontab: ``//`` and ``/* */`` comments, unquoted keys,
single-quoted strings, trailing commas, hexadecimal numbers, leading or trailing decimal
points, a leading ``+``, ``Infinity`` and ``NaN``. Strict JSON is a subset, so it reads too.
Unicode identifier keys beyond ASCII letters are not supported (the reference allows them).
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn

_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F]+|Infinity|NaN|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
)
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ESCAPES = {
    "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "0": "\0",
    "'": "'", '"': '"', "\\": "\\", "/": "/",
}
_WHITESPACE = " \t\n\r\v\f\u00a0\ufeff\u2028\u2029"


class JSON5Error(ValueError):
    """The text is not valid JSON5; the message says where."""


def loads(text: str) -> Any:
    """Parse one JSON5 value from ``text``."""
    reader = _Reader(text)
    value = reader.value()
    reader.skip_space()
    if reader.pos != len(text):
        reader.fail("unexpected text after the value")
    return value


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, problem: str) -> NoReturn:
        raise JSON5Error(f"{problem} at character {self.pos + 1}")

    def skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in _WHITESPACE:
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    self.fail("unterminated comment")
                self.pos = end + 2
            else:
                return

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def value(self) -> Any:
        char = self.peek()
        if char == "{":
            return self.object()
        if char == "[":
            return self.array()
        if char in ("'", '"'):
            return self.string()
        for word, result in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return result
        return self.number()

    def object(self) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        while self.peek() != "}":
            key = self.key()
            if self.peek() != ":":
                self.fail("expected ':' after an object key")
            self.pos += 1
            result[key] = self.value()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                self.fail("expected ',' or '}' in an object")
        self.pos += 1
        return result

    def key(self) -> str:
        char = self.peek()
        if char in ("'", '"'):
            return self.string()
        match = _IDENTIFIER.match(self.text, self.pos)
        if match is None:
            self.fail("expected an object key")
        self.pos = match.end()
        return match.group(0)

    def array(self) -> list[Any]:
        self.pos += 1
        result: list[Any] = []
        while self.peek() != "]":
            if not self.peek():
                self.fail("unterminated array")
            result.append(self.value())
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "]":
                self.fail("expected ',' or ']' in an array")
        self.pos += 1
        return result

    def string(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        parts: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                self.fail("unterminated string")
            char = text[self.pos]
            self.pos += 1
            if char == quote:
                return "".join(parts)
            if char == "\\":
                parts.append(self.escape())
            elif char in "\n\r":
                self.fail("line break inside a string")
            else:
                parts.append(char)

    def escape(self) -> str:
        text = self.text
        if self.pos >= len(text):
            self.fail("unterminated string")
        char = text[self.pos]
        self.pos += 1
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char in ("x", "u"):
            size = 2 if char == "x" else 4
            digits = text[self.pos : self.pos + size]
            if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                self.fail(f"invalid \\{char} escape")
            self.pos += size
            return chr(int(digits, 16))
        if char in "\n\u2028\u2029":
            return ""
        if char == "\r":
            if text.startswith("\n", self.pos):
                self.pos += 1
            return ""
        return char

    def number(self) -> float | int:
        match = _NUMBER.match(self.text, self.pos)
        if match is None or not match.group(0).lstrip("+-"):
            self.fail("expected a value")
        self.pos = match.end()
        token = match.group(0)
        sign = -1 if token.startswith("-") else 1
        body = token.lstrip("+-")
        if body == "Infinity":
            return sign * math.inf
        if body == "NaN":
            return math.nan
        if body[:2] in ("0x", "0X"):
            return sign * int(body, 16)
        if any(c in body for c in ".eE"):
            return sign * float(body)
        return sign * int(body)
