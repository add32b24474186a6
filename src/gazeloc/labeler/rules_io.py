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

ROLES = ("mention", "uncertain", "neutral", "anatomy", "not", "abnormal")
"""Phrase lists of a category file. ``mention``, ``uncertain``, ``neutral`` and ``anatomy``
phrases are mentions; ``not`` phrases cancel overlapping mentions; ``abnormal`` phrases qualify
neutral mentions."""

MODES: tuple[str, ...] = ("gazeloc", "reference")
"""Labeler modes (config ``labeler.mode``). ``reference`` replaces the category files that
``rules/reference/categories/`` holds (the authors' labeler's semantics) and keeps the rest."""

LEAD_SPACE = "_"
"""A phrase written with a leading ``_`` (reference-mode files) matches only where a space
precedes it inside its sentence, and its mention starts at that space."""


@dataclass(frozen=True)
class PhraseRole:
    """Payload of a category phrase: its category, role and whether the mention starts at
    the space before the phrase (:data:`LEAD_SPACE`)."""

    category: str
    role: str
    lead_space: bool = False


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
    mode: str = "gazeloc"


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


def category_files(root: Path, mode: str = "gazeloc") -> list[Path]:
    """The category files of a mode: ``categories/*.yaml``, where ``reference`` mode takes
    each file that ``reference/categories/`` has under the same name instead."""
    if mode not in MODES:
        raise ValueError(f"labeler mode must be one of {MODES}, not {mode!r}")
    files = {p.name: p for p in sorted((root / "categories").glob("*.yaml"))}
    if mode == "reference":
        for path in sorted((root / "reference" / "categories").glob("*.yaml")):
            if path.name not in files:
                raise DataFormatError(
                    path, f"replaces no file of {root / 'categories'} (names must match)"
                )
            files[path.name] = path
    return [files[name] for name in sorted(files)]


def load_rules(rules_dir: str | Path | None = None, mode: str = "gazeloc") -> Rules:
    """Read and compile the rule files of ``rules_dir`` (default: the package's own) for a
    labeler mode (:data:`MODES`)."""
    root = Path(rules_dir) if rules_dir is not None else default_rules_dir()
    phrases: PhraseSet[PhraseRole] = PhraseSet()
    common = _load_yaml(root / "common.yaml")
    common_abnormal = _phrase_list(root / "common.yaml", common, "abnormal")
    seen: set[str] = set()
    for path in category_files(root, mode):
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
                lead = phrase.startswith(LEAD_SPACE)
                if lead and role in ("not", "abnormal"):
                    raise DataFormatError(
                        path, f"'{phrase}': a leading _ only marks mention phrases", column=role
                    )
                payload = PhraseRole(category, role, lead)
                _add(path, phrases, phrase[1:] if lead else phrase, payload, role)
        if data.get("neutral") or data.get("anatomy"):
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
        mode=mode,
    )
