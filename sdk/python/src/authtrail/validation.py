"""Validating events before they are sent.

:func:`validate_event` checks an event against the bundled JSON Schema of its type and then
against the rules of the contract a schema cannot express (:mod:`authtrail.contract`). It
raises :class:`~authtrail.errors.EventValidationError` naming the field at fault; messages
never contain the offending value, so they are safe to log.

Schema engine: the `jsonschema <https://pypi.org/project/jsonschema/>`_ package when it is
installed (``pip install authtrail[jsonschema]``); otherwise the built-in checker in this
module, which implements exactly the keywords the bundled schemas use (``type``,
``properties``, ``required``, ``additionalProperties``, ``$ref`` to ``#/$defs``, ``anyOf``,
``enum``, ``const``, ``minLength``, ``maxLength``, ``pattern``, ``items``, ``format``) and
refuses to run (:class:`~authtrail.errors.ConfigurationError`) on a schema with any other
assertion keyword, so it can never silently check less than the schema says. The test suite
runs both engines on the same valid and invalid events.

Formats checked by both engines: ``date-time`` (RFC 3339 with offset, years 1970 to 9000),
``uuid`` and ``ip`` (IPv4 or IPv6 address).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from functools import lru_cache
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from .contract import check_rules, check_strings
from .errors import ConfigurationError, EventValidationError
from .schemas import event_types, schema_for
from .timefmt import is_rfc3339

PathPart = Union[str, int]
Fault = Tuple[str, str]

#: Engines :func:`validate_event` accepts.
ENGINES = ("auto", "jsonschema", "builtin")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


#: Format name -> check of a string value. Formats not listed (``double``) are annotations.
FORMATS: Dict[str, Callable[[str], bool]] = {
    "date-time": is_rfc3339,
    "uuid": _is_uuid,
    "ip": _is_ip,
}


def field_name(path: Sequence[PathPart]) -> str:
    """``["data", "roles", 1]`` -> ``data.roles[1]``; the empty path is ``(event)``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(event)"


def _type_name(expected: Union[str, List[str]]) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    words = {"null": "null", "object": "an object", "array": "an array", "string": "a string",
             "integer": "an integer", "number": "a number", "boolean": "a boolean"}
    return " or ".join(words.get(n, n) for n in names)


# --------------------------------------------------------------------------------------------
# Built-in engine

_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "title", "description", "default", "examples", "$comment",
     "readOnly", "writeOnly", "deprecated"}
)
_ASSERTIONS = frozenset(
    {"type", "properties", "required", "additionalProperties", "$ref", "anyOf", "enum", "const",
     "minLength", "maxLength", "pattern", "items", "format"}
)


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise ConfigurationError(f"built-in schema checker: unknown type {name!r}")


class BuiltinChecker:
    """The subset of JSON Schema 2020-12 the bundled event schemas use (see module doc)."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root
        self._check_keywords(root)

    def _check_keywords(self, node: Any) -> None:
        if isinstance(node, dict):
            unknown = set(node) - _ANNOTATIONS - _ASSERTIONS
            if unknown:
                raise ConfigurationError(
                    "built-in schema checker: unsupported keyword(s) "
                    f"{sorted(unknown)}; install jsonschema (pip install authtrail[jsonschema])"
                )
            for key, child in node.items():
                if key in ("properties", "$defs"):
                    for sub in child.values():
                        self._check_keywords(sub)
                elif key in ("items", "additionalProperties") and isinstance(child, dict):
                    self._check_keywords(child)
                elif key == "anyOf":
                    for sub in child:
                        self._check_keywords(sub)

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        prefix = "#/$defs/"
        if not ref.startswith(prefix):
            raise ConfigurationError(f"built-in schema checker: unsupported $ref {ref!r}")
        return self._root["$defs"][ref[len(prefix):]]  # type: ignore[no-any-return]

    def faults(self, value: Any, schema: Optional[Mapping[str, Any]] = None,
               path: Tuple[PathPart, ...] = ()) -> Iterator[Fault]:
        """Yields ``(field, reason)`` for every way ``value`` breaks ``schema``."""
        schema = self._root if schema is None else schema
        where = field_name(path)
        if "$ref" in schema:
            yield from self.faults(value, self._resolve(schema["$ref"]), path)
        if "anyOf" in schema:
            branches = [list(self.faults(value, sub, path)) for sub in schema["anyOf"]]
            if all(branches):
                # `anyOf: [X, {"type": "null"}]` is how the schemas say "optional X": report why
                # the value is not an X rather than that it is not null.
                informative = [b for b in branches if b[0][1] != "must be null"]
                yield (informative or branches)[0][0]
        if "type" in schema:
            expected = schema["type"]
            names = [expected] if isinstance(expected, str) else expected
            if not any(_is_type(value, n) for n in names):
                yield where, f"must be {_type_name(expected)}"
                return
        if "const" in schema and value != schema["const"]:
            yield where, f"must be {schema['const']!r}"
        if "enum" in schema and value not in schema["enum"]:
            yield where, "must be one of " + ", ".join(map(str, schema["enum"]))
        if isinstance(value, str):
            yield from self._string_faults(value, schema, where)
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                yield from self.faults(item, schema["items"], path + (i,))
        if isinstance(value, dict):
            yield from self._object_faults(value, schema, path)

    def _string_faults(self, value: str, schema: Mapping[str, Any], where: str) -> Iterator[Fault]:
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield where, "must not be empty" if schema["minLength"] == 1 else (
                f"must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield where, f"must be at most {schema['maxLength']} characters"
        if "pattern" in schema and _pattern(schema["pattern"]).search(value) is None:
            yield where, f"does not match the pattern {schema['pattern']}"
        check = FORMATS.get(schema.get("format", ""))
        if check is not None and not check(value):
            yield where, f"is not a valid {schema['format']}"

    def _object_faults(self, value: Mapping[str, Any], schema: Mapping[str, Any],
                       path: Tuple[PathPart, ...]) -> Iterator[Fault]:
        props: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                yield field_name(path + (name,)), "is required"
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                yield from self.faults(item, props[name], path + (name,))
            elif extra is False:
                yield field_name(path + (name,)), (
                    "unknown field; expected one of " + ", ".join(sorted(props)))
            elif isinstance(extra, dict):
                yield from self.faults(item, extra, path + (name,))


@lru_cache(maxsize=None)
def _pattern(pattern: str) -> "re.Pattern[str]":
    return re.compile(pattern)


@lru_cache(maxsize=None)
def _builtin(event_type: str) -> BuiltinChecker:
    return BuiltinChecker(schema_for(event_type))


# --------------------------------------------------------------------------------------------
# jsonschema engine


def jsonschema_available() -> bool:
    """Whether the ``jsonschema`` package can be imported."""
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=None)
def _jsonschema_validator(event_type: str) -> Any:
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    for name, check in FORMATS.items():
        checker.checks(name)(_only_strings(check))
    cls = jsonschema.Draft202012Validator
    schema = schema_for(event_type)
    cls.check_schema(schema)
    return cls(schema, format_checker=checker)


def _only_strings(check: Callable[[str], bool]) -> Callable[[Any], bool]:
    return lambda value: not isinstance(value, str) or check(value)


def _jsonschema_faults(event: Mapping[str, Any], event_type: str) -> Iterator[Fault]:
    from jsonschema.exceptions import best_match

    errors = list(_jsonschema_validator(event_type).iter_errors(event))
    if not errors:
        return
    error = best_match(errors)
    path: Tuple[PathPart, ...] = tuple(error.absolute_path)
    kind, expected = error.validator, error.validator_value
    if kind == "required":
        missing = [n for n in expected if isinstance(error.instance, dict) and n not in error.instance]
        yield field_name(path + (missing[0] if missing else "?",)), "is required"
    elif kind == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        yield field_name(path + (extra[0] if extra else "?",)), (
            "unknown field; expected one of " + ", ".join(sorted(allowed)))
    elif kind == "type":
        yield field_name(path), f"must be {_type_name(expected)}"
    elif kind == "enum":
        yield field_name(path), "must be one of " + ", ".join(map(str, expected))
    elif kind == "const":
        yield field_name(path), f"must be {expected!r}"
    elif kind == "minLength":
        yield field_name(path), "must not be empty" if expected == 1 else (
            f"must be at least {expected} characters")
    elif kind == "maxLength":
        yield field_name(path), f"must be at most {expected} characters"
    elif kind == "pattern":
        yield field_name(path), f"does not match the pattern {expected}"
    elif kind == "format":
        yield field_name(path), f"is not a valid {expected}"
    else:
        yield field_name(path), f"does not satisfy {kind}"


# --------------------------------------------------------------------------------------------


def schema_faults(event: Mapping[str, Any], engine: str = "auto") -> List[Fault]:
    """The schema faults of ``event`` as ``(field, reason)`` pairs (empty when it conforms).

    ``engine``: ``"jsonschema"``, ``"builtin"`` or ``"auto"`` (jsonschema when installed).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    event_type = event.get("type") if isinstance(event, Mapping) else None
    if not isinstance(event, Mapping):
        return [("(event)", "must be a JSON object")]
    if not isinstance(event_type, str):
        return [("type", "is required" if event_type is None else "must be a string")]
    if event_type not in event_types():
        return [("type", "unknown event type; expected one of " + ", ".join(event_types()))]
    if engine == "auto":
        engine = "jsonschema" if jsonschema_available() else "builtin"
    if engine == "jsonschema":
        return list(_jsonschema_faults(event, event_type))
    faults = list(_builtin(event_type).faults(event))
    return faults[:1]


def validate_event(event: Mapping[str, Any], *, engine: str = "auto") -> None:
    """Raises :class:`EventValidationError` unless ``event`` satisfies its bundled JSON Schema
    and the contract's further rules; returns ``None`` when it does."""
    if not isinstance(event, Mapping):
        raise EventValidationError("(event)", "must be a JSON object")
    check_strings(event)
    faults = schema_faults(event, engine)
    if faults:
        raise EventValidationError(*faults[0])
    check_rules(event)
