"""Payloads to JSON: what ``add_job`` accepts and the exact text stored in ``payload``.

``to_json`` takes the Python shapes people pass around (pydantic models, dataclasses,
dicts, lists, scalars, and inside them datetimes, UUIDs, enums...) and returns JSON text.
``raw_to_json`` accepts only values that already are JSON (dict/list/str/int/float/bool/None).
Either way a value that cannot become JSON is a ``BadInputError`` that names its type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

import pydantic_core

from graphile_worker_cli.errors import BadInputError

EMPTY_PAYLOAD = "{}"


def _reject(value: Any, reason: str) -> BadInputError:
    return BadInputError(
        f"payload of type {type(value).__name__} cannot be stored as JSON ({reason}); "
        "expected a pydantic model, a dataclass, or a dict/list of JSON values"
    )


_ENCODE: Callable[[Any], str] = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
"""``json.dumps(value, allow_nan=False, separators=(",", ":"))`` without building a new
encoder per call (``json.dumps`` only reuses one for its default arguments)."""

if c_make_encoder is not None:  # CPython's C encoder, called directly: the same output
    # and errors (circular references included) without the Python layers around it.

    def _encode(value: Any) -> str:
        if isinstance(value, str):
            return encode_basestring_ascii(value)
        make = c_make_encoder
        assert make is not None
        chunks = make(
            {}, _not_serialisable, encode_basestring_ascii, None, ":", ",", False, False, False
        )(value, 0)
        return "".join(chunks)

    _ENCODE = _encode


def _not_serialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _dumps(value: Any, original: Any) -> str:
    try:
        return _ENCODE(value)
    except ValueError as error:
        # PostgreSQL's json type has no NaN or Infinity.
        raise _reject(original, str(error)) from None
    except TypeError as error:
        raise _reject(original, str(error)) from None


def to_jsonable(payload: Any) -> Any:
    """The payload as plain JSON values (dicts, lists, str, int, float, bool, None)."""
    if payload is None:
        return {}
    try:
        return pydantic_core.to_jsonable_python(payload)
    except pydantic_core.PydanticSerializationError as error:
        detail = str(error).splitlines()[0] if str(error) else "not serialisable"
        raise _reject(payload, detail) from None


def to_json(payload: Any) -> str:
    """JSON text for a payload given as a model, dataclass or JSON-like value.

    ``None`` means "no payload" and becomes ``{}``, as in the reference.
    """
    if payload is None:
        return EMPTY_PAYLOAD
    return _dumps(to_jsonable(payload), payload)


def raw_to_json(payload: Any) -> str:
    """JSON text for a payload that must already be plain JSON values."""
    if payload is None:
        return EMPTY_PAYLOAD
    _check_raw(payload, payload)
    return _dumps(payload, payload)


def _check_raw(value: Any, original: Any) -> None:
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _reject(original, f"{value!r} is not a JSON number")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_raw(item, original)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _reject(original, f"object key {key!r} is not a string")
            _check_raw(item, original)
        return
    raise BadInputError(
        f"raw payload contains a {type(value).__name__}, which is not a JSON value; "
        "expected dict, list, str, int, float, bool or None (use add_job for models)"
    )


def parse_json_text(text: str) -> Any:
    """Parse JSON text given by a user (the CLI); the value must be an object or array."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise BadInputError(
            f"invalid payload JSON: {error.msg} at line {error.lineno} column {error.colno} "
            "(expected a JSON object or array)"
        ) from None
    if not isinstance(value, dict | list):
        raise BadInputError(
            f"invalid payload JSON: got a {_json_type(value)} "
            "(expected a JSON object or array)"
        )
    return value


def _no_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON and PostgreSQL do not.
    raise BadInputError(f"invalid payload JSON: {name} is not a JSON value "
                        "(expected a JSON object or array)")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"
