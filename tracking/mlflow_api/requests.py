"""Reading MLflow request messages from JSON bodies and query strings, with the client's quirks.

The client sends one protobuf message per call (mlflow-protocol.md §1): as protobuf-JSON in the
body for POST/PATCH/DELETE (DELETE too), as query parameters for GET. On GET, booleans arrive as
`True`/`False`, repeated fields as repeated keys, int64 values as strings, and several calls send
a legacy and a new name for the same field (`run_uuid` and `run_id`). `Message` hides the
difference: views ask for typed fields by name and get a 400 naming the field when the value is
of the wrong type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.http import HttpRequest, QueryDict

from tracking.mlflow_api.entities import from_ms
from tracking.mlflow_api.errors import invalid
from webapp import json_limits

_TRUE = {"true", "1"}
_FALSE = {"false", "0", ""}
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
INT64_MAX = 2**63 - 1


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The JSON object in the body; `{}` for an empty body. RequestDataTooBig propagates."""
    raw = request.body
    if not raw.strip():
        return {}
    try:  # Python's json writes NaN/Infinity for float metrics: they are allowed
        data = json_limits.loads(raw, allow_nan=True)
    except json_limits.JsonError as error:
        raise invalid(f"The request body is {error.message}.") from None
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    return data


class Message:
    """One request message: the JSON body, or the query string of a GET."""

    def __init__(self, data: Mapping[str, Any] | QueryDict) -> None:
        self._data = data
        self._query = isinstance(data, QueryDict)

    @classmethod
    def of(cls, request: HttpRequest) -> Message:
        if request.method in ("GET", "HEAD"):
            return cls(request.GET)
        # The permission check (mlflow_api/permissions.py) and the view both read the
        # message: the body is parsed once per request.
        data = getattr(request, "_mlflow_message", None)
        if data is None:
            data = json_body(request)
            request._mlflow_message = data  # type: ignore[attr-defined]
        return cls(data)

    def _raw(self, names: tuple[str, ...]) -> tuple[str, Any]:
        """The first of `names` that has a non-empty value (legacy and new names)."""
        for name in names:
            value = self._data.get(name)
            if value not in (None, ""):
                return name, value
        return names[0], None

    def raw(self, *names: str) -> dict[str, Any]:
        """Untyped values, for fields that are validated together elsewhere."""
        return {name: self._data.get(name) for name in names}

    def string(
        self, *names: str, required: bool = False, default: str = "", max_length: int | None = None
    ) -> str:
        name, value = self._raw(names)
        if value is None:
            if required:
                raise invalid(f"Missing value for required parameter '{name}'.")
            return default
        if not isinstance(value, str):
            raise invalid(f"Parameter '{name}' must be a string, got {_kind(value)}.")
        if max_length is not None and len(value) > max_length:
            raise invalid(f"Parameter '{name}' is longer than {max_length} characters.")
        return storable(value, f"Parameter '{name}'")

    def integer(
        self, *names: str, required: bool = False, default: int | None = None, minimum: int = 0
    ) -> int | None:
        name, value = self._raw(names)
        if value is None:
            if required:
                raise invalid(f"Missing value for required parameter '{name}'.")
            return default
        return to_integer(value, name, minimum=minimum)

    def time_ms(self, name: str) -> datetime | None:
        """An epoch-milliseconds field as an aware datetime."""
        millis = self.integer(name)
        return None if millis is None else to_datetime(millis, name)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._data.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise invalid(f"Parameter '{name}' must be a boolean, got {value!r}.")

    def strings(self, name: str, max_items: int = 1000) -> list[str]:
        """A repeated string field."""
        if self._query:
            values: Any = self._data.getlist(name)  # type: ignore[union-attr]
        else:
            values = self._data.get(name) or []
            if not isinstance(values, list):
                raise invalid(f"Parameter '{name}' must be a list of strings.")
        if len(values) > max_items:
            raise invalid(f"Parameter '{name}' may hold at most {max_items} values.")
        if not all(isinstance(v, str) for v in values):
            raise invalid(f"Parameter '{name}' must be a list of strings.")
        return [storable(v, f"Parameter '{name}'") for v in values]

    def objects(self, name: str, max_items: int = 1000) -> list[dict[str, Any]]:
        """A repeated message field (JSON bodies only)."""
        values = self._data.get(name) or []
        if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
            raise invalid(f"Parameter '{name}' must be a list of objects.")
        if len(values) > max_items:
            raise invalid(f"Parameter '{name}' may hold at most {max_items} entries.")
        return values

    def object(self, name: str) -> dict[str, Any]:
        value = self._data.get(name) or {}
        if not isinstance(value, dict):
            raise invalid(f"Parameter '{name}' must be an object.")
        return value

    def key_values(
        self,
        name: str,
        *,
        max_items: int = 1000,
        max_key: int = 250,
        max_value: int | None = None,
    ) -> dict[str, str]:
        """`[{"key": ..., "value": ...}]` (params, tags) as a dict; a later key wins."""
        result: dict[str, str] = {}
        for i, item in enumerate(self.objects(name, max_items)):
            key, value = item.get("key"), item.get("value", "")
            where = f"{name}[{i}]"
            result[check_key(key, f"{where}.key", max_key)] = check_value(
                value, f"{where}.value", max_value
            )
        return result

    def enum(self, name: str, choices: Mapping[str | int, str], default: str) -> str:
        """A protobuf enum, sent by name or by number."""
        value = self._data.get(name)
        if value in (None, ""):
            return default
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        # A list or an object is no enum value (and cannot be looked up: unhashable).
        if isinstance(value, bool) or not isinstance(value, str | int) or value not in choices:
            names = ", ".join(v for k, v in choices.items() if isinstance(k, str))
            raise invalid(f"Parameter '{name}' must be one of {names}, got {value!r}.")
        return choices[value]


def enum_choices(*names: str, start: int = 1) -> dict[str | int, str]:
    """Name and number of each protobuf enum value (numbers counted from `start`)."""
    choices: dict[str | int, str] = {}
    for number, name in enumerate(names, start=start):
        choices[name] = name
        choices[number] = name
    return choices


def to_integer(value: Any, name: str, *, minimum: int = 0) -> int:
    # int64 fields arrive as JSON numbers or, per protobuf-JSON, as strings.
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise invalid(f"Parameter '{name}' must be an integer, got {_kind(value)}.")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except ValueError:
        number = None
    if number is None:
        raise invalid(f"Parameter '{name}' must be an integer, got {value!r}.")
    if number < minimum or number > INT64_MAX:
        raise invalid(f"Parameter '{name}' is out of range: {number}.")
    return number


def to_number(value: Any, name: str) -> float:
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid(f"Parameter '{name}' must be a number, got {_kind(value)}.")
    try:
        return float(value)
    except ValueError:
        raise invalid(f"Parameter '{name}' must be a number, got {value!r}.") from None


def to_datetime(millis: int, name: str) -> datetime:
    try:
        return from_ms(millis)
    except (OverflowError, ValueError):
        raise invalid(f"Parameter '{name}' is out of range: {millis} ms.") from None


def storable(text: str, where: str) -> str:
    """Text every database stores: PostgreSQL refuses NUL, and UTF-8 lone surrogates."""
    if "\x00" in text:
        raise invalid(f"{where} must not contain NUL characters.")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise invalid(f"{where} is not valid Unicode text.") from None
    return text


def check_key(key: Any, where: str, max_length: int = 250) -> str:
    if not isinstance(key, str) or not key:
        raise invalid(f"{where} must be a non-empty string.")
    if len(key) > max_length:
        raise invalid(f"{where} is longer than {max_length} characters.")
    return storable(key, where)


def check_value(value: Any, where: str, max_length: int | None = None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"{where} must be a string, got {_kind(value)}.")
    if max_length is not None and len(value) > max_length:
        raise invalid(f"{where} is longer than {max_length} characters.")
    return storable(value, where)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), repr(value))
