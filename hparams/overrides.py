"""Command-line style overrides: `section.key=value` strings, typed by the config's fields.

    apply_overrides(cfg, ["optimizer.lr=0.2", "schedule.epochs=3", "lgc.fixed_epochs=[66,132]"])

Values are parsed according to the field's type: numbers, `true`/`false`, `none`/`null` for
optional fields, `[a,b]` or `a,b` for integer lists, enum choices by name. The result is a
new, fully validated Config; every mistake raises a one-line ConfigError naming the valid
sections, keys or choices. (As in TF Model Garden's `--params_override`.)
"""

import typing
from collections.abc import Mapping

from mobilenets.errors import ConfigError

from .config import SECTIONS, Config, did_you_mean, field_types
from .fields import check_value, parse_text

_EXAMPLE = "e.g. optimizer.lr=0.2"


def valid_keys():
    """Every overridable key, as 'section.key'."""
    return [f"{section}.{name}" for section, cls in SECTIONS.items() for name in field_types(cls)]


def _is_text_field(tp):
    """str, a Literal of strings, or Optional of those: a str value is taken verbatim from a mapping."""
    args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) is typing.Union else [tp]
    return all(a is str or typing.get_origin(a) is typing.Literal for a in args)


def resolve_key(key):
    """'section.key' -> (section, key, field type); ConfigError listing the valid choices otherwise."""
    if not isinstance(key, str):
        raise ConfigError(f"override keys must be strings like 'optimizer.lr'; got {key!r}")
    key = key.strip()
    parts = key.split(".")
    if len(parts) != 2 or not all(parts):
        if key in SECTIONS:
            keys = ", ".join(sorted(field_types(SECTIONS[key])))
            raise ConfigError(f"override key {key!r} names a section, not a key; valid keys of {key!r}: {keys}")
        owners = [s for s, cls in SECTIONS.items() if key in field_types(cls)]
        hint = f" (did you mean {owners[0]}.{key}?)" if len(owners) == 1 else ""
        raise ConfigError(f"override key {key!r} must be section.key{hint}; valid sections: {', '.join(SECTIONS)}")
    section, name = parts
    if section not in SECTIONS:
        raise ConfigError(
            f"unknown section {section!r} in {key!r}{did_you_mean(section, SECTIONS)}; valid sections: {', '.join(SECTIONS)}"
        )
    types = field_types(SECTIONS[section])
    if name not in types:
        raise ConfigError(
            f"unknown key {key!r}{did_you_mean(name, types)}; valid keys of {section!r}: {', '.join(sorted(types))}"
        )
    return section, name, types[name]


def parse_override(text):
    """'section.key=value' -> (section, key, typed value)."""
    if not isinstance(text, str):
        raise ConfigError(f"an override must be a string like 'section.key=value'; got {text!r}")
    key, sep, value = text.partition("=")
    if not sep:
        raise ConfigError(f"override {text!r} must look like section.key=value ({_EXAMPLE})")
    section, name, tp = resolve_key(key)
    return section, name, parse_text(f"{section}.{name}", tp, value)


def apply_overrides(config, overrides):
    """Returns a new Config with `overrides` applied; `config` is left unchanged.

    `overrides` is a list of 'section.key=value' strings (a single string is accepted too),
    or a mapping {'section.key': value}. Mapping values may be typed Python values, checked
    like `Config.from_dict` does, or strings, parsed like command-line values. Later
    overrides of the same key win. Cross-field rules are checked once, on the result.
    """
    if not isinstance(config, Config):
        raise TypeError(f"apply_overrides needs a hparams.Config, not {type(config).__name__}")
    if overrides is None:
        return config
    if isinstance(overrides, str):
        overrides = [overrides]
    changes = {}
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            section, name, tp = resolve_key(key)
            full = f"{section}.{name}"
            if isinstance(value, str) and not _is_text_field(tp):
                value = parse_text(full, tp, value)
            changes.setdefault(section, {})[name] = check_value(full, tp, value)
    else:
        for text in overrides:
            section, name, value = parse_override(text)
            changes.setdefault(section, {})[name] = value
    return Config.from_dict(changes, base=config)
