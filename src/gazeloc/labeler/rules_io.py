"""Loading the rule files of ``gazeloc/labeler/rules/`` into matchers.

Rule files are YAML (see ``rules/README.md``). Every phrase is checked when it is loaded; a
malformed file raises :class:`~gazeloc.errors.DataFormatError` naming the file and the phrase.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gazeloc.errors import DataFormatError
from gazeloc.labeler.phrases import PhraseError, PhraseSet
from gazeloc.labels import REFLACX_LABELS_PHASE_23, REFLACX_TO_MODEL

CATEGORIES: tuple[str, ...] = tuple(name for name in REFLACX_LABELS_PHASE_23 if name != "Other")
"""The 15 labeler categories: the REFLACX phase-2/3 label names other than ``Other``."""

TRIGGER_KINDS: tuple[str, ...] = (
    "pre_negation_uncertainty",
    "negation",
    "post_negation_uncertainty",
    "stability",
    "pseudo",
)
"""Trigger kinds, in priority order (pre-negation uncertainty wins over negation, ...)."""

SCOPES = ("following", "preceding", "either", "both")

ROLES = ("mention", "uncertain", "neutral", "not", "abnormal")
"""Phrase lists of a category file. ``mention``, ``uncertain`` and ``neutral`` phrases are
mentions; ``not`` phrases cancel overlapping mentions; ``abnormal`` phrases qualify neutral
mentions."""


@dataclass(frozen=True)
class PhraseRole:
    """Payload of a category phrase: its category and role."""

    category: str
    role: str


@dataclass(frozen=True)
class TriggerRule:
    """Payload of a trigger phrase: its kind and scope."""

    kind: str
    scope: str


@dataclass(frozen=True)
class Rules:
    """Everything the labeler reads from its rule files, compiled."""

    categories: tuple[str, ...]
    phrases: PhraseSet[PhraseRole]
    triggers: PhraseSet[TriggerRule]
    trigger_rank: dict[TriggerRule, int]
    terminators: PhraseSet[bool]
    conjunctions: frozenset[str]
    verbs: frozenset[str]
    connectors: frozenset[str]
    model_labels: dict[str, tuple[str, ...]]


def default_rules_dir() -> Path:
    """The rule files shipped with the package."""
    return Path(str(resources.files("gazeloc.labeler") / "rules"))


class _PhraseLoader(yaml.SafeLoader):
    """YAML loader that reads every plain scalar as a string (``- no`` is the word "no")."""


_PhraseLoader.yaml_implicit_resolvers = {}


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_PhraseLoader)
    except FileNotFoundError:
        raise DataFormatError(path, "rule file is missing") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataFormatError(
            path,
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            line=mark.line + 1 if mark else None,
            column=str(mark.column + 1) if mark else None,
        ) from None
    if not isinstance(data, dict):
        raise DataFormatError(path, "a rule file must be a YAML mapping")
    return data


def _phrase_list(path: Path, data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataFormatError(path, f"'{key}' must be a list of phrases", column=key)
    return value


def _add(path: Path, target: PhraseSet[Any], phrase: str, payload: Any, key: str) -> None:
    try:
        target.add(phrase, payload)
    except PhraseError as exc:
        raise DataFormatError(path, f"bad phrase under '{key}': {exc}", column=key) from None


def load_rules(rules_dir: str | Path | None = None) -> Rules:
    """Read and compile the rule files of ``rules_dir`` (default: the package's own)."""
    root = Path(rules_dir) if rules_dir is not None else default_rules_dir()
    phrases: PhraseSet[PhraseRole] = PhraseSet()
    common = _load_yaml(root / "common.yaml")
    common_abnormal = _phrase_list(root / "common.yaml", common, "abnormal")
    seen: set[str] = set()
    for path in sorted((root / "categories").glob("*.yaml")):
        data = _load_yaml(path)
        unknown = set(data) - {"category", *ROLES}
        if unknown:
            raise DataFormatError(path, f"unknown keys {sorted(unknown)}", column=min(unknown))
        category = data.get("category")
        if category not in CATEGORIES:
            raise DataFormatError(
                path, f"category '{category}' is not one of {list(CATEGORIES)}", column="category"
            )
        if category in seen:
            raise DataFormatError(path, f"category '{category}' defined twice", column="category")
        seen.add(category)
        for role in ROLES:
            for phrase in _phrase_list(path, data, role):
                _add(path, phrases, phrase, PhraseRole(category, role), role)
        if data.get("neutral"):
            for phrase in common_abnormal:
                _add(
                    root / "common.yaml",
                    phrases,
                    phrase,
                    PhraseRole(category, "abnormal"),
                    "abnormal",
                )
    missing = [c for c in CATEGORIES if c not in seen]
    if missing:
        raise DataFormatError(root / "categories", f"no rule file for categories {missing}")

    triggers: PhraseSet[TriggerRule] = PhraseSet()
    rank: dict[TriggerRule, int] = {}
    for kind in TRIGGER_KINDS:
        path = root / f"{kind}.yaml"
        data = _load_yaml(path)
        if data.get("kind") != kind:
            raise DataFormatError(path, f"'kind' must be '{kind}'", column="kind")
        keys = ("phrases",) if kind == "pseudo" else SCOPES
        unknown = set(data) - {"kind", *keys}
        if unknown:
            raise DataFormatError(path, f"unknown keys {sorted(unknown)}", column=min(unknown))
        for key in keys:
            rule = TriggerRule(kind, "none" if kind == "pseudo" else key)
            rank.setdefault(rule, TRIGGER_KINDS.index(kind))
            for phrase in _phrase_list(path, data, key):
                _add(path, triggers, phrase, rule, key)

    path = root / "termination.yaml"
    data = _load_yaml(path)
    terminators: PhraseSet[bool] = PhraseSet()
    for phrase in _phrase_list(path, data, "terminators"):
        _add(path, terminators, phrase, True, "terminators")
    words = {}
    for key in ("conjunctions", "verbs", "connectors"):
        words[key] = frozenset(w.lower() for w in _phrase_list(path, data, key))
    return Rules(
        categories=CATEGORIES,
        phrases=phrases,
        triggers=triggers,
        trigger_rank=rank,
        terminators=terminators,
        conjunctions=words["conjunctions"],
        verbs=words["verbs"],
        connectors=words["connectors"],
        model_labels={c: REFLACX_TO_MODEL.get(c, ()) for c in CATEGORIES},
    )
