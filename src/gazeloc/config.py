"""Configuration validation with messages that name the key and its allowed values.

The Snakefile calls :func:`coerce_config` and then :func:`check_config` before
``snakemake.utils.validate`` (which also fills in the schema's defaults), so that a wrong type,
an unknown key or an out-of-range value stops the run before any job with a one-line
explanation.

Typed overrides: Snakemake reads a structured ``--config`` value
(``--config "training={'epochs': 2}"``, ``seeds=[1,2]``) with YAML's BaseLoader, so every
scalar in it arrives as a string. :func:`coerce_config` converts such strings to the types the
schema allows at their key (integer, number, boolean, null; in lists and nested sections too).
Where a key allows several types (``type: [integer, string]``, ``oneOf``/``anyOf``), they are
tried in the schema's order and the first that parses wins; a string that fits none is left as
it is, for :func:`check_config` to refuse.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NO = object()


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
    bounds = _bounds(schema)
    if bounds:
        details.append(bounds)
    if "multipleOf" in schema:
        details.append(f"a multiple of {schema['multipleOf']}")
    if "minItems" in schema:
        details.append(f"at least {schema['minItems']} item(s)")
    if schema.get("type") == "object" and "properties" in schema:
        details.append("with keys " + ", ".join(schema["properties"]))
    if "items" in schema:
        details.append("of " + _allowed(schema["items"]))
    return f"{parts[0]} {', '.join(details)}" if details else parts[0]


def _bounds(schema: dict[str, Any]) -> str:
    """``'from 0 (excluded) to 10'``-style text of a schema's bounds, or ``''``."""
    keys = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
    if not any(k in schema for k in keys):
        return ""
    if "exclusiveMinimum" in schema:
        low = f"{schema['exclusiveMinimum']} (excluded)"
    else:
        low = str(schema.get("minimum", "-inf"))
    if "exclusiveMaximum" in schema:
        high = f"{schema['exclusiveMaximum']} (excluded)"
    else:
        high = str(schema.get("maximum", "inf"))
    return f"from {low} to {high}"


def _non_finite(value: Any, path: str = "") -> tuple[str, float] | None:
    """The first NaN or infinite number in a config (its dotted key), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    if isinstance(value, dict):
        items = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = _non_finite(item, key)
        if found is not None:
            return found
    return None


def _get(config: dict[str, Any], schema: dict[str, Any], *keys: str) -> Any:
    """A config value, or the schema's default when the config leaves it out."""
    node, sub = config, schema
    for key in keys:
        sub = sub.get("properties", {}).get(key, {})
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return node if node != {} else sub.get("default")


def check_consistency(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Checks across keys that the schema cannot express (each a one-line ConfigError)."""
    size = _get(config, schema, "images", "size")
    grid = _get(config, schema, "model", "grid")
    if isinstance(grid, int) and isinstance(size, int) and grid > size:
        raise ConfigError(
            f"config key 'model.grid' = {grid} is not allowed: larger than images.size = "
            f"{size}; allowed: an integer from 1 to images.size, or null"
        )
    for name, exp in (config.get("experiment_settings") or {}).items():
        g = (exp or {}).get("model", {}).get("grid") if isinstance(exp, dict) else None
        if isinstance(g, int) and isinstance(size, int) and g > size:
            raise ConfigError(
                f"config key 'experiment_settings.{name}.model.grid' = {g} is not allowed: "
                f"larger than images.size = {size}"
            )
    results = config.get("results_dir")
    if isinstance(results, str) and results:
        where = Path(results).expanduser().resolve()
        forbidden = {
            Path("/").resolve(): "the file system root",
            Path.home().resolve(): "your home folder",
        }
        data = config.get("data") or {}
        if data.get("source") == "real":
            for key in ("reflacx_dir", "mimic_dir"):
                if data.get(key):
                    forbidden[Path(data[key]).expanduser().resolve()] = f"data.{key}"
        for path, what in forbidden.items():
            inside = what.startswith("data.") and path.is_relative_to(where)
            if where == path or inside:
                raise ConfigError(
                    f"config key 'results_dir' = {results!r} is not allowed: it is {what}"
                    + (" or holds it" if inside and where != path else "")
                    + "; allowed: a folder of its own (outputs are written and replaced there)"
                )


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


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/...``)."""
    while isinstance(schema, dict) and "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema if isinstance(schema, dict) else {}


def _alternatives(schema: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    """The single-type alternatives a key allows, in the schema's order."""
    schema = _resolve(schema, root)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return [a for sub in schema[key] for a in _alternatives(sub, root)]
    kind = schema.get("type")
    if isinstance(kind, list):
        return [{**schema, "type": k} for k in kind]
    return [schema]


def _parse(text: str, schema: dict[str, Any]) -> Any:
    """``text`` as the type of ``schema`` (a single-type alternative), or ``_NO``."""
    kind = schema.get("type")
    if kind is None and ("enum" in schema or "const" in schema):
        choices = schema.get("enum", [schema.get("const")])
        for choice in choices:
            if choice == text or (not isinstance(choice, str) and _parse_scalar(text) == choice):
                return choice
        return _NO
    if kind == "string":
        choices = schema.get("enum")
        return text if choices is None or text in choices else _NO
    value = _parse_scalar(text, kind)
    if value is _NO or ("enum" in schema and value not in schema["enum"]):
        return _NO
    return value


def _parse_scalar(text: str, kind: str | None = None) -> Any:
    stripped = text.strip()
    if kind in (None, "integer") and _INTEGER.fullmatch(stripped):
        return int(stripped)
    if kind in (None, "number") and _NUMBER.fullmatch(stripped):
        return int(stripped) if _INTEGER.fullmatch(stripped) else float(stripped)
    if kind in (None, "boolean") and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if kind in (None, "null") and stripped in ("null", "Null", "NULL", "~", ""):
        return None
    return _NO


def _coerce(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    alternatives = _alternatives(schema, root)
    if isinstance(value, dict):
        for alt in alternatives:
            if alt.get("type", "object") == "object" and (
                "properties" in alt or isinstance(alt.get("additionalProperties"), dict)
            ):
                props = alt.get("properties", {})
                extra = alt.get("additionalProperties")
                for key in list(value):
                    sub = props.get(key, extra if isinstance(extra, dict) else None)
                    if sub is not None:
                        value[key] = _coerce(value[key], sub, root)
                break
        return value
    if isinstance(value, list):
        for alt in alternatives:
            if alt.get("type") == "array" and isinstance(alt.get("items"), dict):
                return [_coerce(v, alt["items"], root) for v in value]
        return value
    if isinstance(value, str):
        for alt in alternatives:
            parsed = _parse(value, alt)
            if parsed is not _NO:
                return parsed
    return value


def coerce_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Convert string values to the types the schema allows at their keys, in place (module
    doc); returns ``config``."""
    schema = load_schema(schema_path)
    _coerce(config, schema, schema)
    return config


def check_config(config: dict[str, Any], schema_path: str | Path) -> None:
    """Raise :class:`ConfigError` naming the first offending key and what it may be."""
    schema = load_schema(schema_path)
    found = _non_finite(config)
    if found is not None:
        raise ConfigError(
            f"config key '{found[0]}' = {found[1]!r} is not allowed: not a finite number; "
            "allowed: finite numbers only"
        )
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        check_consistency(config, schema)
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
