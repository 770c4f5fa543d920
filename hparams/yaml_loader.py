"""YAML config files, read safely (PyYAML's SafeLoader) with two fixes.

1. YAML 1.1, which PyYAML implements, reads `1e-4` as the *string* "1e-4" (it wants `1.0e-4`);
   configs are full of such numbers, so exponent floats without a dot are read as floats.
2. A key repeated in one mapping is an error, not silently "last one wins".
"""

import re

from mobilenets.errors import ConfigError

_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


def _loader_class():
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            "reading a YAML config needs PyYAML (pip install pyyaml); or save the config as .json"
        ) from None

    class StrictSafeLoader(yaml.SafeLoader):
        pass

    StrictSafeLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    StrictSafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))

    def construct_mapping(loader, node, deep=False):
        loader.flatten_mapping(node)
        result = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=deep)
            try:
                duplicate = key in result
            except TypeError:  # an unhashable key (a list or mapping used as a key)
                raise ConfigError(f"line {key_node.start_mark.line + 1}: a config key must be a plain name") from None
            if duplicate:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            result[key] = loader.construct_object(value_node, deep=True)
        return result

    StrictSafeLoader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    return yaml, StrictSafeLoader


def parse_yaml(text, path="<string>"):
    """Parses YAML text into plain Python data; raises ConfigError (one line) on any problem."""
    yaml, loader = _loader_class()
    try:
        data = yaml.load(text, Loader=loader)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(e, "problem", None) or type(e).__name__).split())
        raise ConfigError(f"{path} is not valid YAML: {problem}{where}") from None
    except (ValueError, TypeError, RecursionError) as e:  # e.g. out-of-range dates and other odd scalars
        raise ConfigError(f"{path} is not a usable YAML config: {type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
    return {} if data is None else data
