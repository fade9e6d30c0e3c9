"""Payloads to JSON: what ``add_job`` accepts and the exact text stored in ``payload``.

``to_json`` takes the Python shapes people pass around (pydantic models, dataclasses,
dicts, lists, scalars, and inside them datetimes, UUIDs, enums...) and returns JSON text.
``raw_to_json`` accepts only values that already are JSON (dict/list/str/int/float/bool/None).
Either way a value that cannot become JSON is a ``BadInputError`` that names its type.
The text is written by ``js_json``: byte for byte what Node's ``JSON.stringify`` writes.
"""

from __future__ import annotations

import json
from typing import Any

from graphile_worker_cli import js_json
from graphile_worker_cli.errors import BadInputError

EMPTY_PAYLOAD = "{}"


def _reject(value: Any, reason: str) -> BadInputError:
    # The reason names the offending value (`nan (a float) is not a JSON number`); the
    # payload's own type only when nothing inside it is singled out.
    return BadInputError(
        f"payload cannot be stored as JSON: {reason}; "
        "expected a pydantic model, a dataclass, or a dict/list of JSON values"
    )


def to_jsonable(payload: Any) -> Any:
    """The payload as plain JSON values (dicts, lists, str, int, float, bool, None)."""
    if payload is None:
        return {}
    # Imported here: plain JSON values (what `gw add-job` queues) never need it.
    import pydantic_core

    try:
        return pydantic_core.to_jsonable_python(payload)
    except pydantic_core.PydanticSerializationError as error:
        detail = str(error).splitlines()[0] if str(error) else "not serialisable"
        raise _reject(payload, detail) from None
    except UnicodeEncodeError:  # pydantic encodes keys as UTF-8 on the way
        raise _reject(payload, "a key holds a lone UTF-16 surrogate") from None


def to_json(payload: Any) -> str:
    """JSON text for a payload given as a model, dataclass or JSON-like value.

    ``None`` means "no payload" and becomes ``{}``, as in the reference.
    """
    if payload is None:
        return EMPTY_PAYLOAD
    try:
        return js_json.stringify(payload)  # plain JSON values: no conversion needed
    except js_json.NotJSONError:
        pass
    value = to_jsonable(payload)  # models, dataclasses, dates, enums, int keys...
    try:
        return js_json.stringify(value)
    except js_json.NotJSONError as error:
        raise _reject(payload, error.reason) from None


def raw_to_json(payload: Any) -> str:
    """JSON text for a payload that must already be plain JSON values."""
    if payload is None:
        return EMPTY_PAYLOAD
    try:
        return js_json.stringify(payload)
    except js_json.NotJSONError as error:
        if error.unsupported_type is None:
            raise _reject(payload, error.reason) from None
        raise BadInputError(
            f"raw payload contains a {error.unsupported_type.__name__}, which is not a JSON "
            "value; expected dict, list, str, int, float, bool or None (use add_job for models)"
        ) from None


def replacement_to_json(payload: Any) -> str:
    """JSON text for the payload a failed job is left with (a batch job's failed items, or
    a ``TaskFailure``'s replacement), as the reference writes it: ``null`` for NaN and the
    infinities (a number too large for a double, read from the database, is infinite)."""
    import pydantic_core

    try:
        value = pydantic_core.to_jsonable_python(payload)
        return js_json.stringify(value, non_finite_as_null=True)
    except pydantic_core.PydanticSerializationError as error:
        detail = str(error).splitlines()[0] if str(error) else "not serialisable"
        raise _reject(payload, detail) from None
    except js_json.NotJSONError as error:
        raise _reject(payload, error.reason) from None


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
