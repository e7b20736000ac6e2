"""How a request body becomes data: strict JSON, bounded, and the body rules of the API.

Python's ``json`` module accepts what JSON does not (``NaN``, ``Infinity``), turns ``1e999``
into infinity, raises ``ValueError`` on an integer literal of more than 4,300 digits and
``RecursionError`` on deep nesting. Each of those is a 400 here, with what was wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import wraps
from typing import Any

import flask
import flask_smorest
import marshmallow as ma
from flask import abort, request
from webargs import core
from webargs.flaskparser import FlaskParser

# Deeper than any document the API takes (a message with attachments and headers is 4).
MAX_DEPTH = 32
# Below Python's own limit on converting digits (4,300 by default), which raises ValueError;
# ranges in the schemas then refuse any integer the API cannot store.
MAX_INTEGER_DIGITS = 4096


class BadJson(ValueError):
    """The body is not JSON the API can take; the message says why."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise BadJson(f"an integer of more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(f"the number {text[:40]} is out of range")
    return value


def _refuse_constant(name: str) -> Any:
    raise BadJson(f"{name} is not JSON")


def _check_depth(value: Any) -> None:
    """Walk the parsed value without recursion; refuse nesting past MAX_DEPTH."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadJson(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def parse_json_body(raw: bytes) -> Any:
    """The parsed body, or BadJson saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson("the body is not UTF-8") from exc
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except RecursionError as exc:
        raise BadJson(f"nested deeper than {MAX_DEPTH} levels") from exc
    except BadJson:
        raise
    except ValueError as exc:  # JSONDecodeError, and int() past the digit limit
        raise BadJson(f"invalid JSON ({exc})") from exc
    _check_depth(value)
    return value


class JsonParser(FlaskParser):
    """webargs, with strict JSON bodies and unknown query parameters refused like fields."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not core.is_json(req.mimetype):
            return core.missing
        raw = req.get_data(cache=True)
        if not raw.strip():
            return core.missing
        try:
            return parse_json_body(raw)
        except BadJson as exc:
            abort(400, description=f"The body is not valid JSON: {exc}.")


F = Callable[..., Any]


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """flask-smorest's Blueprint with the parser above; a required body must be sent."""

    ARGUMENTS_PARSER = JsonParser()

    def arguments(
        self, schema: Any, *, location: str = "json", required: bool = True, **kwargs: Any
    ) -> Callable[[F], F]:
        parse = super().arguments(schema, location=location, required=required, **kwargs)
        if location != "json" or not required:
            return parse  # type: ignore[no-any-return]

        def decorator(func: F) -> F:
            parsed = parse(func)

            @wraps(parsed)
            def wrapper(*args: Any, **kw: Any) -> Any:
                if not request.get_data(cache=True).strip():
                    abort(400, description="This operation needs a JSON body: send {} at least.")
                return parsed(*args, **kw)

            return wrapper

        return decorator
