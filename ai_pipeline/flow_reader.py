"""Reading flow JSON with exact error locations: the typed reader behind `flow_schema`.

`Reader` wraps one JSON object with its key path; each accessor checks the type and
raises `FlowError` naming the file, the path (``stages.intro.on[0].goto``) and the
problem, and unknown keys are refused with a "did you mean" hint, so a typo in a flow
file never passes silently.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final, cast

from ai_pipeline.flow_model import Template
from ai_pipeline.nlp.intent import Intent, IntentSet
from ai_pipeline.templates import template_fields

__all__ = [
    "FlowError",
    "Reader",
    "check_name",
    "compile_pattern",
    "join_path",
    "read_intent",
    "read_intents",
    "read_template",
    "read_time",
    "type_name",
]

_NAME: Final = re.compile(r"^[a-z][a-z0-9_]*$")


class FlowError(ValueError):
    """A flow file is invalid.

    Attributes:
        file: the file's name.
        path: where in it (a key path such as ``stages.intro.on[0].goto``, or a line).
        problem: what is wrong.
    """

    def __init__(self, file: str, path: str, problem: str) -> None:
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.path = path
        self.problem = problem


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Reader:
    """A JSON object being read, with its path for error messages."""

    def __init__(self, file: str, path: str, data: object, allowed: Iterable[str]) -> None:
        self.file = file
        self.path = path
        if not isinstance(data, dict):
            raise self.error("", f"must be an object, not {type_name(data)}")
        self.data: dict[str, Any] = data
        allowed_keys = tuple(allowed)
        for key in self.data:
            if key not in allowed_keys:
                close = difflib.get_close_matches(key, allowed_keys, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.error(key, f"unknown key{hint}")

    def error(self, key: str | int, problem: str) -> FlowError:
        return FlowError(self.file, join_path(self.path, key) if key != "" else self.path, problem)

    def at(self, key: str | int) -> str:
        return join_path(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.data:
            if default is None:
                raise self.error(key, "is required")
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {type_name(value)}")
        return value

    def opt_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        return self.text(key)

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {type_name(value)}")
        return value

    def whole(self, key: str, default: int | None, minimum: int = 0) -> int | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be a whole number, not {type_name(value)}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}")
        return value

    def number(self, key: str) -> Decimal | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number, not {type_name(value)}")
        return Decimal(str(value))

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self.error(key, f"must be a list of strings, not {type_name(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise FlowError(
                    self.file, join_path(self.at(key), index), "must be a non-empty string"
                )
        return tuple(value)

    def names(self, key: str) -> tuple[str, ...]:
        """A string or a list of strings."""
        value = self.data.get(key)
        if isinstance(value, str):
            return (value,)
        return self.str_list(key)

    def template(self, key: str) -> Template:
        value = self.data.get(key)
        if value is None:
            return ()
        return read_template(self.file, self.at(key), value)

    def obj(self, key: str, allowed: Iterable[str]) -> Reader | None:
        if key not in self.data:
            return None
        return Reader(self.file, self.at(key), self.data[key], allowed)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, f"must be an object, not {type_name(value)}")
        return value


def type_name(value: object) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }
    return names.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def read_template(file: str, path: str, value: object) -> Template:
    variants = [value] if isinstance(value, str) else value
    if not isinstance(variants, list) or not variants:
        raise FlowError(file, path, "must be a string or a non-empty list of strings")
    for index, variant in enumerate(variants):
        where = path if isinstance(value, str) else join_path(path, index)
        if not isinstance(variant, str) or not variant.strip():
            raise FlowError(file, where, "must be a non-empty string")
        try:
            template_fields(variant)
        except ValueError as exc:
            raise FlowError(file, where, f"bad template: {exc}") from None
    return tuple(cast(list[str], variants))


def compile_pattern(file: str, path: str, source: str) -> re.Pattern[str]:
    """Compile a pattern as the NLP does (wrapped in word boundaries).

    Raises:
        FlowError: it does not compile (the position refers to the pattern as written).
    """
    try:
        re.compile(source)
    except re.error as exc:
        raise FlowError(file, path, f"pattern does not compile: {exc}") from None
    return re.compile(rf"(?<![a-z0-9])(?:{source})(?![a-z0-9])")


def read_intent(file: str, path: str, name: str, spec: object, priority: int = 0) -> Intent:
    """Read an intent.

    Accepts ``[pattern | {"pattern": p, "weight": w}, ...]`` or
    ``{"patterns": [...], "priority": n}``.
    """
    if isinstance(spec, dict):
        obj = Reader(file, path, spec, ("patterns", "priority"))
        priority = obj.whole("priority", priority, minimum=-10) or 0
        items, path = obj.data.get("patterns"), obj.at("patterns")
    else:
        items = spec
    if not isinstance(items, list) or not items:
        raise FlowError(file, path, "must be a non-empty list of patterns")
    patterns: list[str | tuple[str, float]] = []
    for index, item in enumerate(items):
        where = join_path(path, index)
        if isinstance(item, str):
            compile_pattern(file, where, item)
            patterns.append(item)
            continue
        entry = Reader(file, where, item, ("pattern", "weight"))
        source = entry.text("pattern")
        weight = entry.data.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1:
            raise entry.error("weight", "must be a number above 0 and at most 1")
        compile_pattern(file, entry.at("pattern"), source)
        patterns.append((source, float(weight)))
    return Intent.build(name, patterns, priority)


def read_intents(file: str, path: str, data: Mapping[str, Any], min_confidence: float) -> IntentSet:
    built = []
    for name, spec in data.items():
        check_name(file, join_path(path, name), name)
        built.append(read_intent(file, join_path(path, name), name, spec))
    return IntentSet(built, min_confidence=min_confidence)


def check_name(file: str, path: str, name: str) -> None:
    if not _NAME.match(name):
        raise FlowError(file, path, "names use lowercase letters, digits and underscores")


def read_time(obj: Reader, key: str) -> dt.time | None:
    value = obj.opt_text(key)
    if value is None:
        return None
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise obj.error(key, f"must be a time as HH:MM, not {value!r}") from None
