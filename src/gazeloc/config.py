"""Configuration validation with messages that name the key and its allowed values.

The Snakefile calls :func:`check_config` before ``snakemake.utils.validate`` (which also fills
in the schema's defaults), so that a wrong type, an unknown key or an out-of-range value stops
the run before any job with a one-line explanation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration value that the schema does not allow."""


def _allowed(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    if "oneOf" in schema or "anyOf" in schema:
        return " or ".join(_allowed(s) for s in schema.get("oneOf", schema.get("anyOf", [])))
    kind = schema.get("type")
    parts = [" or ".join(kind) if isinstance(kind, list) else str(kind or "value")]
    details = []
    if "minimum" in schema or "maximum" in schema:
        details.append(f"from {schema.get('minimum', '-inf')} to {schema.get('maximum', 'inf')}")
    if "multipleOf" in schema:
        details.append(f"a multiple of {schema['multipleOf']}")
    if "minItems" in schema:
        details.append(f"at least {schema['minItems']} item(s)")
    if schema.get("type") == "object" and "properties" in schema:
        details.append("with keys " + ", ".join(schema["properties"]))
    if "items" in schema:
        details.append("of " + _allowed(schema["items"]))
    return f"{parts[0]} {', '.join(details)}" if details else parts[0]


def _subschema(schema: dict[str, Any], path: list[Any]) -> dict[str, Any]:
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return node


def load_schema(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def check_config(config: dict[str, Any], schema_path: str | Path) -> None:
    """Raise :class:`ConfigError` naming the first offending key and what it may be."""
    schema = load_schema(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        parent = ".".join(map(str, path))
        key = f"{parent}.{unknown[0]}" if parent else unknown[0]
        known = ", ".join(error.schema.get("properties", {}))
        raise ConfigError(f"config key '{key}' is unknown; allowed keys here: {known}")
    key = ".".join(map(str, path)) or "(top level)"
    target = _subschema(schema, path)
    allowed = _allowed(target) if target else _allowed(error.schema)
    if len(path) >= 2 and path[0] == "data" and path[1] in ("reflacx_dir", "mimic_dir"):
        allowed = "a folder path (required when data.source is 'real')"
    raise ConfigError(
        f"config key '{key}' = {error.instance!r} is not allowed: {error.message}; "
        f"allowed: {allowed}"
    )
