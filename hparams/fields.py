"""Field types of the configs: checking given values and parsing override strings.

A config field is annotated with one of a few types, and only these:

    int, float, bool, str            plain values (an int is accepted for a float)
    Literal["a", "b"]                one of fixed choices (an enum)
    Optional[T]                      T or None (JSON null; "none"/"null" in overrides)
    Tuple[int, ...]                  a list of ints (JSON list; "[66,132]" in overrides)

`check_value` validates an already-typed value (from a dict, JSON or YAML);
`parse_text` turns an override string into such a value first. Both raise
`ConfigError` with a one-line message that names the key and what is expected.
"""

import math
import re
import typing

from mobilenets.errors import ConfigError

NONE_WORDS = ("none", "null", "~")
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
_INT_RE = re.compile(r"^[+-]?\d+$")


def describe_type(tp):
    """Human wording of a field type, for error messages."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(c) for c in typing.get_args(tp))
    if origin is typing.Union:
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return describe_type(inner[0]) + " or null"
    if origin is tuple:
        return "a list of integers"
    return {int: "an integer", float: "a number", bool: "a boolean (true/false)", str: "a string"}[tp]


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(key, tp, value):
    raise ConfigError(f"{key} must be {describe_type(tp)}; got {_short(value)} ({type(value).__name__})")


def check_value(key, tp, value):
    """Returns `value` normalised for field type `tp` (int -> float, list -> tuple), or raises ConfigError."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        try:
            return check_value(key, inner, value)
        except ConfigError:
            _fail(key, tp, value)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if isinstance(value, str) and value in choices:
            return value
        _fail(key, tp, value)
    if origin is tuple:
        if isinstance(value, (list, tuple)) and all(type(v) is int for v in value):
            return tuple(value)
        _fail(key, tp, value)
    if tp is bool:
        if type(value) is bool:
            return value
        _fail(key, tp, value)
    if tp is int:
        if type(value) is int:
            return value
        _fail(key, tp, value)
    if tp is float:
        if type(value) in (int, float):
            try:
                number = float(value)
            except OverflowError:
                _fail(key, tp, value)
            if math.isfinite(number):
                return number
            raise ConfigError(f"{key} must be a finite number; got {_short(value)}")
        _fail(key, tp, value)
    if tp is str:
        if isinstance(value, str):
            return value
        _fail(key, tp, value)
    raise TypeError(f"unsupported config field type {tp!r} for {key}")  # a bug in hparams, not a user error


def parse_text(key, tp, text):
    """Parses the string `text` of an override into a value of field type `tp`, checked."""
    text = text.strip()
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        if text.lower() in NONE_WORDS or text == "":
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        try:
            return parse_text(key, inner, text)
        except ConfigError:
            raise ConfigError(f"{key} must be {describe_type(tp)}; got {_short(text)}") from None
    if origin is tuple:
        body = text
        if len(body) >= 2 and body[0] + body[-1] in ("[]", "()"):
            body = body[1:-1]
        items = [item.strip() for item in body.split(",")] if body.strip() else []
        if not all(_INT_RE.match(item) for item in items):
            raise ConfigError(f"{key} must be a list of integers such as [66,132]; got {_short(text)}")
        return tuple(int(item) for item in items)
    if tp is bool:
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise ConfigError(f"{key} must be true or false; got {_short(text)}")
    if tp is int:
        if _INT_RE.match(text):
            return int(text)
        raise ConfigError(f"{key} must be an integer; got {_short(text)}")
    if tp is float:
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{key} must be a number; got {_short(text)}") from None
        return check_value(key, tp, number)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return check_value(key, tp, text)  # str and Literal
