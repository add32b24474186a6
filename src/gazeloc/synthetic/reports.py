"""Synthetic dictated reports: sentence planning, REFLACX-style text and word timestamps.

Two steps:

* :func:`compose_report` plans the sentences of one report from the findings of an image (with
  the certainty the simulated radiologist has about each), its support devices and the finding
  kinds that may be stated absent. Each :class:`PlannedSentence` records the character span of
  the phrase that reports each finding (a phrase the REFLACX labeler matches for that category),
  so the gaze model knows what is looked at while each sentence is spoken.
* :func:`dictate` turns the sentences into ``transcription.txt`` and
  ``timestamps_transcription.csv`` content (docs/method.md#input-data): lower-case text, sentences
  joined by ``". "``, ``.`` and ``,`` as their own tokens, times in seconds from the audio start
  with 2 decimals, non-decreasing.

Times are kept as integer centiseconds internally, so rounding can never reorder them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gazeloc.synthetic.types import DEVICE_KINDS, FINDING_KINDS, Device, Finding

__all__ = [
    "Dictation",
    "PlannedMention",
    "PlannedSentence",
    "SentenceTiming",
    "Word",
    "compose_report",
    "dictate",
    "tokenize",
]

# --- public types ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedMention:
    """A finding reported in a sentence: ``text[start:end]`` of the sentence is its phrase."""

    finding: int
    start: int
    end: int
    status: str


@dataclass(frozen=True)
class PlannedSentence:
    """One report sentence (lower case, ending with ".") and what it talks about."""

    text: str
    mentions: tuple[PlannedMention, ...]
    negated_kinds: tuple[str, ...]
    device_kinds: tuple[str, ...]


@dataclass(frozen=True)
class Word:
    """One row of ``timestamps_transcription.csv`` (seconds from audio start, 2 decimals)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class SentenceTiming:
    """Where a sentence lies in the transcription (characters) and in the audio (seconds).

    ``mention_times`` has one entry per :class:`PlannedMention` of the sentence: the start time
    of the token containing the mention's first character. ``first_mention``/``last_mention``
    are those of the smallest/largest mention start offset (None without mentions).
    """

    char_start: int
    char_end: int
    start: float
    end: float
    mention_times: tuple[float, ...]
    first_mention: float | None
    last_mention: float | None


@dataclass(frozen=True)
class Dictation:
    """A dictated report: transcription text, its timed tokens and per-sentence timings."""

    transcription: str
    words: tuple[Word, ...]
    sentences: tuple[SentenceTiming, ...]


def tokenize(transcription: str) -> list[str]:
    """REFLACX tokens of a transcription: ``.`` and ``,`` become tokens; split on single spaces."""
    return transcription.replace(".", " .").replace(",", " ,").split(" ")


# --- vocabulary -----------------------------------------------------------------------------

_SECTION: dict[str, int] = {
    "consolidation": 1,
    "atelectasis": 1,
    "edema": 1,
    "groundglass": 1,
    "interstitial": 1,
    "nodule": 1,
    "mass": 1,
    "emphysema": 1,
    "effusion": 2,
    "pneumothorax": 2,
    "cardiomegaly": 3,
    "wide_mediastinum": 3,
    "hilar_enlargement": 3,
    "rib_fracture": 4,
    "hiatal_hernia": 4,
}
"""Report section of each finding kind: 0 devices, 1 lungs, 2 pleura, 3 heart/mediastinum,
4 bones and other."""

_LUNG_KINDS = frozenset(k for k, s in _SECTION.items() if s in (1, 2))

# Size words by kind: finding.size ("small", "moderate", "large") or "low" (certainty <= 2).
_GRADE = {
    "small": ("mild", "mild", "minimal"),
    "moderate": ("moderate",),
    "large": ("severe", "marked"),
    "low": ("minimal", "subtle", "mild"),
}
_SIZE_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "effusion": {
        "small": ("small", "small", "trace"),
        "moderate": ("moderate", "moderate-sized"),
        "large": ("large",),
        "low": ("trace", "minimal", "subtle"),
    },
    "pneumothorax": {
        "small": ("small", "tiny"),
        "moderate": ("moderate", "moderate-sized"),
        "large": ("large",),
        "low": ("tiny", "subtle", "small"),
    },
    "consolidation": {
        "small": ("focal", "patchy", "mild"),
        "moderate": ("", "dense"),
        "large": ("extensive", "dense"),
        "low": ("subtle", "faint", ""),
    },
    "atelectasis": {
        "small": ("mild", "minimal", "linear", "plate-like"),
        "moderate": ("", "moderate"),
        "large": ("extensive", "dense"),
        "low": ("minimal", "subtle", "mild"),
    },
    "edema": _GRADE,
    "groundglass": {
        "small": ("faint", "mild", ""),
        "moderate": ("",),
        "large": ("extensive", "diffuse"),
        "low": ("faint", "subtle"),
    },
    "interstitial": {
        "small": ("mild", "subtle"),
        "moderate": ("", "moderate"),
        "large": ("extensive", "coarse"),
        "low": ("subtle", "mild"),
    },
    "emphysema": _GRADE,
    "cardiomegaly": {
        "small": ("mild", "mild", "borderline"),
        "moderate": ("moderate",),
        "large": ("severe", "marked"),
        "low": ("minimal", "borderline", "mild"),
    },
    "wide_mediastinum": {
        "small": ("mild", "slight"),
        "moderate": ("", "moderate"),
        "large": ("marked", ""),
        "low": ("slight", "minimal"),
    },
    "hilar_enlargement": {
        "small": ("mild", ""),
        "moderate": ("",),
        "large": ("marked", "prominent"),
        "low": ("subtle", "mild"),
    },
    "rib_fracture": {
        "small": ("nondisplaced", "minimally displaced"),
        "moderate": ("mildly displaced", "", "acute"),
        "large": ("displaced", "acute displaced"),
        "low": ("subtle", "subtle nondisplaced"),
    },
    "hiatal_hernia": {
        "small": ("small",),
        "moderate": ("moderate", "moderate-sized", ""),
        "large": ("large",),
        "low": ("small", ""),
    },
    "nodule": {
        "small": ("small", "tiny", "eight millimeter", "six millimeter"),
        "moderate": ("", "one centimeter", "twelve millimeter"),
        "large": ("large", "two centimeter"),
        "low": ("subtle", "faint", "tiny"),
    },
    "mass": {
        "small": ("small", ""),
        "moderate": ("", "three centimeter"),
        "large": ("large", "five centimeter"),
        "low": ("subtle", ""),
    },
}
_ADVERBS = {
    "small": ("mildly", "mildly", "slightly"),
    "moderate": ("moderately",),
    "large": ("markedly", "severely"),
    "low": ("minimally", "slightly"),
}
_ORDINALS = ("third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_RIB_ASPECT = ("posterior", "lateral", "anterior", "posterolateral", "", "")

_NEG_PHRASES: dict[str, tuple[str, ...]] = {
    "consolidation": ("focal consolidation", "focal consolidation", "consolidation"),
    "edema": ("pulmonary edema",),
    "atelectasis": ("atelectasis",),
    "nodule": ("suspicious pulmonary nodule", "discrete pulmonary nodule"),
    "mass": ("focal mass", "pulmonary mass"),
    "groundglass": ("ground-glass opacity",),
    "interstitial": ("interstitial lung disease", "interstitial abnormality"),
    "emphysema": ("hyperinflation",),
    "effusion": ("pleural effusion", "pleural effusion", "effusion", "pleural effusions"),
    "pneumothorax": ("pneumothorax",),
    "hilar_enlargement": ("hilar enlargement", "hilar adenopathy", "hilar lymphadenopathy"),
    "rib_fracture": ("displaced rib fracture", "acute rib fracture", "displaced fracture"),
    "hiatal_hernia": ("hiatal hernia",),
}
"""How a kind is named in a negated list ("no focal consolidation, pleural effusion or ...")."""

_NEG_PROB: dict[str, float] = {
    "pneumothorax": 0.75,
    "effusion": 0.65,
    "consolidation": 0.5,
    "edema": 0.3,
    "cardiomegaly": 0.6,
    "wide_mediastinum": 0.3,
    "rib_fracture": 0.12,
    "atelectasis": 0.06,
    "nodule": 0.06,
    "mass": 0.04,
    "groundglass": 0.04,
    "interstitial": 0.04,
    "emphysema": 0.05,
    "hilar_enlargement": 0.06,
    "hiatal_hernia": 0.03,
}
"""Chance that an absent kind is stated absent."""

_NEG_LIST_ORDER = (
    "consolidation",
    "edema",
    "atelectasis",
    "groundglass",
    "interstitial",
    "nodule",
    "mass",
    "emphysema",
    "effusion",
    "pneumothorax",
    "hilar_enlargement",
    "hiatal_hernia",
)

_DEVICE_SENTENCES: dict[str, tuple[str, ...]] = {
    "endotracheal_tube": (
        "endotracheal tube in standard position",
        "endotracheal tube terminates approximately four centimeters above the carina",
        "the endotracheal tube is in appropriate position",
        "endotracheal tube tip projects at the level of the clavicular heads",
        "et tube is in good position",
    ),
    "nasogastric_tube": (
        "nasogastric tube courses below the diaphragm",
        "nasogastric tube extends below the diaphragm with tip in the stomach",
        "enteric tube courses below the diaphragm and out of view",
        "the nasogastric tube tip is in the stomach",
    ),
    "central_line": (
        "internal jugular central line terminates in the svc",
        "central venous catheter with tip in the lower svc",
        "the central line terminates at the cavoatrial junction",
        "central venous catheter in standard position",
    ),
    "pacemaker": (
        "left chest wall pacemaker with leads in the right atrium and right ventricle",
        "dual lead pacemaker in standard position",
        "cardiac pacemaker with leads in expected position",
        "pacemaker leads terminate in the right atrium and right ventricle",
    ),
    "sternal_wires": (
        "median sternotomy wires",
        "intact median sternotomy wires",
        "postsurgical changes of median sternotomy",
        "sternotomy wires are intact",
    ),
}
_DEVICE_NAMES = {
    "endotracheal_tube": "endotracheal tube",
    "nasogastric_tube": "nasogastric tube",
    "central_line": "central line",
}

# --- phrase building ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Phrase:
    """A report phrase with the mention phrase(s) in square brackets.

    ``number`` is "sing", "plural" or "mass" (for articles and verb agreement); a ``clause`` is
    a complete statement that takes no hedge (used only for definite findings).
    """

    text: str
    number: str = "mass"
    clause: bool = False


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text.replace(" ,", ",").replace("[ ", "[").replace(" ]", "]")


def _side_word(side: str) -> str:
    return side if side in ("right", "left", "bilateral") else ""


def _location(side: str, zone: str) -> tuple[str, str]:
    """(adjectival, prepositional) location words, e.g. ("left basilar", "at the left base")."""
    s = _side_word(side)
    lobe = {"upper": "upper lobe", "lower": "lower lobe"}
    if zone in lobe:
        name = lobe[zone]
        if s == "bilateral":
            return f"bilateral {name}", f"in both {name}s"
        if s:
            return f"{s} {name}", f"in the {s} {name}"
        return name, f"in the {zone} lungs"
    if zone == "middle":
        return {
            "right": ("right middle lobe", "in the right middle lobe"),
            "left": ("lingular", "in the lingula"),
            "bilateral": ("bilateral mid lung", "in both mid lungs"),
        }.get(s, ("mid lung", "in the mid lungs"))
    if zone == "basal":
        return {
            "right": ("right basilar", "at the right base"),
            "left": ("left basilar", "at the left base"),
            "bilateral": ("bibasilar", "at both lung bases"),
        }.get(s, ("basilar", "at the lung bases"))
    if zone == "apical":
        return {
            "right": ("right apical", "at the right apex"),
            "left": ("left apical", "at the left apex"),
            "bilateral": ("biapical", "at both apices"),
        }.get(s, ("apical", "at the apices"))
    if zone == "perihilar":
        if s == "bilateral":
            return "bilateral perihilar", "in both perihilar regions"
        if s:
            return f"{s} perihilar", f"in the {s} perihilar region"
        return "perihilar", "in the perihilar regions"
    if zone == "diffuse":
        if s in ("right", "left"):
            return f"diffuse {s}", f"throughout the {s} lung"
        return "diffuse", "throughout both lungs"
    if zone == "retrocardiac":
        return "retrocardiac", "in the retrocardiac region"
    if s == "bilateral":
        return "bilateral", "in both lungs"
    if s:
        return s, f"in the {s} lung"
    return "", ""


def _np_candidates(f: Finding, size: str, adverb: str, rng: np.random.Generator) -> list[_Phrase]:
    """All phrasings of a finding (mention in brackets); placeholders already filled."""
    side = _side_word(f.side)
    bilat = side == "bilateral"
    lr = side if side in ("right", "left") else ""
    adj, prep = _location(f.side, f.zone)
    k = f.kind
    out: list[_Phrase] = []
    if k == "effusion":
        if bilat:
            more, less = ("left", "right") if rng.random() < 0.5 else ("right", "left")
            out += [
                _Phrase(f"{size} bilateral [pleural effusions]", "plural"),
                _Phrase(f"{size} bilateral [effusions]", "plural"),
                _Phrase(f"{size} [pleural effusions] bilaterally", "plural"),
                _Phrase(
                    f"{size} bilateral [pleural effusions], {more} greater than {less}",
                    clause=True,
                ),
            ]
            if f.size == "small":
                out.append(_Phrase("[blunting] of both costophrenic angles", clause=True))
        else:
            out += [
                _Phrase(f"{size} {lr} [pleural effusion]", "sing"),
                _Phrase(f"{size} {lr} [effusion]", "sing"),
                _Phrase(f"{size} {lr} layering [pleural effusion]", "sing"),
            ]
            if lr:
                out.append(_Phrase(f"{size} [pleural effusion] on the {lr}", "sing"))
                if f.size == "small":
                    out.append(_Phrase(f"[blunting] of the {lr} costophrenic angle", clause=True))
    elif k == "pneumothorax":
        if bilat:
            out += [
                _Phrase(f"{size} bilateral [pneumothoraces]", "plural"),
                _Phrase(f"{size} bilateral apical [pneumothoraces]", "plural"),
            ]
        else:
            out += [
                _Phrase(f"{size} {lr} [pneumothorax]", "sing"),
                _Phrase(f"{size} {lr} apical [pneumothorax]", "sing"),
            ]
            if lr:
                out += [
                    _Phrase(f"{size} {lr}-sided [pneumothorax]", "sing"),
                    _Phrase(f"{size} [pneumothorax] at the {lr} apex", "sing"),
                ]
    elif k == "consolidation":
        out += [
            _Phrase(f"{size} {adj} [consolidation]"),
            _Phrase(f"{size} [consolidation] {prep}"),
            _Phrase(f"{size} {adj} [airspace consolidation]"),
        ]
        if bilat:
            out.append(_Phrase(f"{size} multifocal [consolidation]"))
    elif k == "atelectasis":
        out += [
            _Phrase(f"{size} {adj} [atelectasis]"),
            _Phrase(f"{size} [atelectasis] {prep}"),
            _Phrase(f"{size} {adj} [atelectatic changes]", "plural"),
        ]
        if prep and f.zone in ("upper", "lower", "middle", "basal"):
            out.append(_Phrase(f"[volume loss] {prep}"))
        if f.zone in ("upper", "lower", "middle") and lr and f.size == "large":
            out.append(_Phrase(f"[collapse] of the {lr} {f.zone} lobe"))
    elif k == "edema":
        if lr:
            out += [
                _Phrase(f"{size} [edema] in the {lr} lung"),
                _Phrase(f"{size} asymmetric {lr} [pulmonary edema]"),
            ]
        else:
            out += [
                _Phrase(f"{size} [pulmonary edema]"),
                _Phrase(f"{size} [pulmonary edema]"),
                _Phrase(f"{size} bilateral [pulmonary edema]"),
                _Phrase(f"findings of {size} [pulmonary edema]", clause=True),
            ]
            if f.zone == "perihilar":
                out.append(_Phrase(f"{size} perihilar [edema]"))
    elif k == "groundglass":
        plural = bilat or f.zone == "diffuse"
        if plural:
            out += [
                _Phrase(f"{size} {adj} [ground-glass opacities]", "plural"),
                _Phrase(f"{size} [hazy opacities] {prep}", "plural"),
                _Phrase(f"{size} [ground-glass opacities] {prep}", "plural"),
            ]
        else:
            out += [
                _Phrase(f"{size} [hazy opacity] {prep}", "sing"),
                _Phrase(f"{size} {adj} [ground-glass opacity]", "sing"),
                _Phrase(f"{size} [ground-glass opacity] {prep}", "sing"),
                _Phrase(f"{size} [hazy opacification] {prep}"),
            ]
    elif k == "interstitial":
        out += [
            _Phrase(f"{size} increased [interstitial markings] {prep}", "plural"),
            _Phrase(f"{size} coarse [interstitial markings]", "plural"),
            _Phrase(f"{size} {adj} [fibrosis]"),
            _Phrase(f"{size} {adj} [reticular opacities]", "plural"),
            _Phrase(f"[reticular pattern] {prep}", "sing"),
            _Phrase("[interstitial lung disease]"),
        ]
    elif k == "emphysema":
        out += [
            _Phrase(f"{size} [emphysema]"),
            _Phrase("[hyperinflated lungs]", "plural"),
            _Phrase(f"{size} [emphysematous changes]", "plural"),
            _Phrase("[hyperinflated lungs] consistent with emphysema", clause=True),
            _Phrase("the lungs are [hyperinflated]", clause=True),
            _Phrase("[hyperinflation] with flattening of the diaphragms", clause=True),
        ]
        if f.zone == "upper":
            out.append(_Phrase(f"{size} upper lobe predominant [emphysema]"))
    elif k == "cardiomegaly":
        out += [
            _Phrase(f"{size} [cardiomegaly]"),
            _Phrase(f"{size} [cardiomegaly]"),
            _Phrase(f"{adverb} [enlarged cardiac silhouette]", "sing"),
            _Phrase(f"{size} [cardiac enlargement]"),
            _Phrase(f"the [cardiac silhouette] is {adverb} enlarged", clause=True),
            _Phrase(f"[heart size] is {adverb} enlarged", clause=True),
        ]
    elif k == "wide_mediastinum":
        out += [
            _Phrase(f"{adverb} [widened mediastinum]", "sing"),
            _Phrase(f"{size} [mediastinal widening]"),
            _Phrase(f"{size} [widening of the mediastinum]"),
            _Phrase("abnormal [mediastinal contour]", "sing"),
            _Phrase(f"the [mediastinum] is {adverb} widened", clause=True),
            _Phrase(f"{adverb} [widened superior mediastinum]", "sing"),
        ]
    elif k == "hilar_enlargement":
        out += [
            _Phrase(f"{size} {side} [hilar enlargement]"),
            _Phrase(f"{side} [hilar adenopathy]"),
            _Phrase(f"{size} {side} [hilar lymphadenopathy]"),
        ]
        if lr:
            out.append(_Phrase(f"[enlarged {lr} hilum]", "sing"))
    elif k == "rib_fracture":
        ordinal = int(rng.integers(len(_ORDINALS) - 1))
        first, second = _ORDINALS[ordinal], _ORDINALS[ordinal + 1]
        aspect = _pick(rng, _RIB_ASPECT)
        if bilat:
            out += [
                _Phrase(f"{size} bilateral [rib fractures]", "plural"),
                _Phrase(f"bilateral {size} [rib fractures]", "plural"),
            ]
        elif f.size == "large":
            out += [
                _Phrase(f"multiple {size} {lr} [rib fractures]", "plural"),
                _Phrase(f"{size} [fractures] of the {lr} {first} and {second} ribs", "plural"),
            ]
        else:
            out += [
                _Phrase(f"{size} {lr} {aspect} {first} rib [fracture]", "sing"),
                _Phrase(f"{size} [fracture] of the {lr} {aspect} {first} rib", "sing"),
                _Phrase(f"{size} {lr} [rib fracture]", "sing"),
            ]
    elif k == "hiatal_hernia":
        out += [
            _Phrase(f"{size} [hiatal hernia]", "sing"),
            _Phrase(f"{size} [hiatal hernia]", "sing"),
            _Phrase(f"{size} [hiatus hernia]", "sing"),
            _Phrase(f"{size} retrocardiac [hiatal hernia]", "sing"),
        ]
    elif k in ("nodule", "mass"):
        noun, nouns = ("nodule", "nodules") if k == "nodule" else ("mass", "masses")
        lobar = f.zone in ("upper", "lower", "middle", "apical", "basal")
        if bilat:
            out += [
                _Phrase(f"{size} bilateral pulmonary [{nouns}]", "plural"),
                _Phrase(f"multiple {size} [{nouns}] in both lungs", "plural"),
            ]
            if k == "nodule":
                out.append(_Phrase(f"{size} bilateral [nodular opacities]", "plural"))
        else:
            out += [
                _Phrase(f"{size} [{noun}] {prep}", "sing"),
                _Phrase(f"{size} pulmonary [{noun}] {prep}", "sing"),
            ]
            if lobar:
                out.append(_Phrase(f"{size} {adj} [{noun}]", "sing"))
            if k == "nodule":
                out.append(_Phrase(f"{size} [nodular opacity] {prep}", "sing"))
    else:
        raise ValueError(f"unknown finding kind {k!r}")
    return [_Phrase(_tidy(p.text), p.number, p.clause) for p in out]


def _size_key(f: Finding, certainty: int) -> str:
    if certainty <= 2:
        return "low"
    return f.size if f.size in ("small", "moderate", "large") else "moderate"


def _finding_phrase(
    f: Finding, certainty: int, rng: np.random.Generator, *, allow_clause: bool
) -> _Phrase:
    key = _size_key(f, certainty)
    size = _pick(rng, _SIZE_WORDS[f.kind][key])
    adverb = _pick(rng, _ADVERBS[key])
    options = _np_candidates(f, size, adverb, rng)
    if not allow_clause:
        options = [p for p in options if not p.clause] or options[:1]
    return options[int(rng.integers(len(options)))]


def _article(p: _Phrase) -> str:
    if p.number != "sing":
        return ""
    first = p.text.lstrip("[")
    return "an " if first[:1] in "aeio" else "a "


def _hedge_group(certainty: int) -> int:
    return 5 if certainty >= 5 else 4 if certainty == 4 else 3 if certainty == 3 else 2


def _hedged(p: _Phrase, certainty: int, rng: np.random.Generator) -> str:
    """Wrap a phrase into a statement whose wording matches the certainty."""
    group = _hedge_group(certainty)
    if p.clause:
        return p.text
    art, be = _article(p), ("are" if p.number == "plural" else "is")
    if group == 5:
        forms = [
            p.text,
            p.text,
            p.text,
            f"there {be} {art}{p.text}",
            f"{p.text} {be} noted",
            f"{p.text} {be} present",
            f"{p.text} {be} seen",
        ]
    elif group == 4:
        forms = [
            f"likely {p.text}",
            f"probable {p.text}",
            f"findings consistent with {art}{p.text}",
            f"findings suggestive of {art}{p.text}",
            f"{p.text} {be} likely present",
        ]
    elif group == 3:
        forms = [
            f"possible {p.text}",
            f"questionable {p.text}",
            f"cannot exclude {art}{p.text}",
            f"{p.text} cannot be excluded",
            f"{p.text} {be} not excluded",
            f"findings may represent {art}{p.text}",
        ]
    else:
        forms = [
            f"possible {p.text}",
            f"questionable {p.text}",
            f"cannot entirely exclude {art}{p.text}",
        ]
    return _pick(rng, forms)


def _status(certainty: int) -> str:
    return "positive" if certainty >= 4 else "uncertain"


_PAIR_LINKS: dict[tuple[str, str], tuple[str, ...]] = {
    ("cardiomegaly", "edema"): (" with", " with", " and"),
    ("cardiomegaly", "effusion"): (" and",),
    ("edema", "effusion"): (" and", " with"),
    ("wide_mediastinum", "hilar_enlargement"): (" and",),
}
"""Finding pairs reported in one phrase ("mild cardiomegaly with mild pulmonary edema")."""


def _pair_phrase(
    a: Finding, b: Finding, ca: int, cb: int, rng: np.random.Generator
) -> _Phrase | None:
    """One phrase reporting finding ``a`` then finding ``b``, or None if they do not go together.

    Only findings with the same hedge wording are joined, so one hedge fits both.
    """
    if _hedge_group(ca) != _hedge_group(cb):
        return None
    if a.kind == "effusion" and b.kind in ("atelectasis", "consolidation"):
        same_side = a.side == b.side and a.side in ("right", "left", "bilateral")
        if not same_side or b.zone not in ("basal", "lower", "retrocardiac"):
            return None
        pa = _finding_phrase(a, ca, rng, allow_clause=False)
        link = _pick(rng, (" with adjacent", ", with adjacent", " with associated"))
        extra = " compressive" if b.kind == "atelectasis" and rng.random() < 0.25 else ""
        return _Phrase(f"{pa.text}{link}{extra} [{b.kind}]", pa.number)
    links = _PAIR_LINKS.get((a.kind, b.kind))
    if links is None or (b.kind == "effusion" and b.side != "bilateral"):
        return None
    pa = _finding_phrase(a, ca, rng, allow_clause=False)
    pb = _finding_phrase(b, cb, rng, allow_clause=False)
    return _Phrase(f"{pa.text}{_pick(rng, links)} {pb.text}", pa.number)


def _unbracket(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Remove the square brackets, returning the plain text and the bracketed spans."""
    plain: list[str] = []
    spans: list[tuple[int, int]] = []
    start = -1
    for ch in text:
        if ch == "[":
            start = len(plain)
        elif ch == "]":
            spans.append((start, len(plain)))
        else:
            plain.append(ch)
    return "".join(plain), spans


def _sentence(
    text: str,
    findings: Sequence[int] = (),
    certainties: Sequence[int] = (),
    negated: Sequence[str] = (),
    devices: Sequence[str] = (),
) -> PlannedSentence:
    body, spans = _unbracket(_tidy(text))
    if len(spans) != len(findings):
        raise AssertionError(f"phrase {text!r} has {len(spans)} mentions, not {len(findings)}")
    mentions = tuple(
        PlannedMention(i, s, e, _status(c))
        for i, c, (s, e) in zip(findings, certainties, spans, strict=True)
    )
    return PlannedSentence(body + ".", mentions, tuple(negated), tuple(devices))


# --- negations and normal statements ---------------------------------------------------------


def _negation_text(kinds: Sequence[str], rng: np.random.Generator) -> str:
    names = [_pick(rng, _NEG_PHRASES[k]) for k in kinds]
    if len(names) == 1:
        listed = names[0]
    elif len(names) == 2:
        listed = f"{names[0]} or {names[1]}"
    else:
        last = _pick(rng, (" or ", " or ", ", or "))
        listed = ", ".join(names[:-1]) + last + names[-1]
    be = "are" if names[0].endswith(("effusions", "nodules")) else "is"
    forms = (f"no {listed}", f"no {listed}", f"there {be} no {listed}", f"no evidence of {listed}")
    return _pick(rng, forms)


def _heart_statement(
    cardio: bool, medi: bool, rng: np.random.Generator
) -> tuple[str, tuple[str, ...]] | None:
    if cardio and medi:
        text = _pick(
            rng,
            (
                "the cardiomediastinal silhouette is within normal limits",
                "normal cardiomediastinal silhouette",
                "heart size and mediastinal contours are normal",
                "the cardiomediastinal silhouette is normal",
            ),
        )
        return text, ("cardiomegaly", "wide_mediastinum")
    if cardio:
        text = _pick(
            rng,
            (
                "heart size is normal",
                "the heart size is normal",
                "normal heart size",
                "no cardiomegaly",
                "the heart is not enlarged",
                "heart size is within normal limits",
            ),
        )
        return text, ("cardiomegaly",)
    if medi:
        text = _pick(rng, ("no mediastinal widening", "the mediastinum is not widened"))
        return text, ("wide_mediastinum",)
    return None


# --- composing a report ---------------------------------------------------------------------


def compose_report(
    findings: Sequence[Finding],
    certainties: Sequence[int],
    devices: Sequence[Device],
    absent_kinds: Sequence[str],
    rng: np.random.Generator,
) -> list[PlannedSentence]:
    """Plan the sentences of one dictated report.

    Every finding is reported in exactly one sentence (with ``status`` "positive" for certainty
    4-5 and "uncertain" for 1-3; the wording hedges accordingly). Some ``absent_kinds`` that are
    not among the findings are stated absent; normal statements are added only where no finding
    contradicts them. Order: devices, lungs, pleura, heart/mediastinum, bones, with variations.
    """
    if len(findings) != len(certainties):
        raise ValueError("findings and certainties must have the same length")
    for f in findings:
        if f.kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding kind {f.kind!r}")
    for c in certainties:
        if not 1 <= int(c) <= 5:
            raise ValueError(f"certainty must be 1-5, not {c!r}")
    present = {f.kind for f in findings}
    absent = [k for k in FINDING_KINDS if k in set(absent_kinds) and k not in present]

    # (section, sentence); sections: -1 opener, 0 devices, 1-4 as _SECTION, 5 closing remark.
    planned: list[tuple[float, PlannedSentence]] = []

    if rng.random() < 0.06:
        opener = _pick(rng, ("single frontal view of the chest", "portable view of the chest"))
        planned.append((-1, _sentence(opener)))

    # devices
    device_kinds = list(dict.fromkeys(d.kind for d in devices))
    for kind in device_kinds:
        if kind not in DEVICE_KINDS:
            raise ValueError(f"unknown device kind {kind!r}")
    tubes = [k for k in device_kinds if k in _DEVICE_NAMES]
    if len(tubes) >= 2 and rng.random() < 0.3:
        names = " and ".join(_DEVICE_NAMES[k] for k in tubes[:2])
        planned.append((0, _sentence(f"{names} in standard position", devices=tubes[:2])))
        device_kinds = [k for k in device_kinds if k not in tubes[:2]]
    for kind in device_kinds:
        planned.append((0, _sentence(_pick(rng, _DEVICE_SENTENCES[kind]), devices=(kind,))))

    # findings, sometimes two per sentence
    order = list(range(len(findings)))
    rng.shuffle(order)
    order.sort(key=lambda i: _SECTION[findings[i].kind])
    used: set[int] = set()
    finding_sentences: list[tuple[int, int, PlannedSentence]] = []  # (section, certainty, s)
    for i in order:
        if i in used:
            continue
        used.add(i)
        fi, ci = findings[i], int(certainties[i])
        sentence = None
        for j in order:
            if j in used or rng.random() >= 0.55:
                continue
            for a, b in ((i, j), (j, i)):
                pair = _pair_phrase(
                    findings[a], findings[b], int(certainties[a]), int(certainties[b]), rng
                )
                if pair is not None:
                    ca, cb = int(certainties[a]), int(certainties[b])
                    sentence = _sentence(_hedged(pair, ca, rng), (a, b), (ca, cb))
                    break
            if sentence is not None:
                used.add(j)
                break
        if sentence is None:
            phrase = _finding_phrase(fi, ci, rng, allow_clause=ci >= 5 and rng.random() < 0.35)
            sentence = _sentence(_hedged(phrase, ci, rng), (i,), (ci,))
        finding_sentences.append((_SECTION[fi.kind], ci, sentence))

    if finding_sentences and rng.random() < 0.2:
        # lead with the most certain finding
        best = max(range(len(finding_sentences)), key=lambda n: finding_sentences[n][1])
        lead = finding_sentences.pop(best)
        planned.append((0, lead[2]))
    planned += [(sec, s) for sec, _, s in finding_sentences]

    # normal lungs, then negations
    if not present & _LUNG_KINDS and rng.random() < 0.6:
        clear = _pick(
            rng,
            (
                "the lungs are clear",
                "lungs are clear",
                "the lungs are well expanded and clear",
                "lungs are clear bilaterally",
            ),
        )
        planned.append((1, _sentence(clear)))
    chosen = [k for k in absent if rng.random() < _NEG_PROB[k]]
    listed = [k for k in _NEG_LIST_ORDER if k in chosen]
    while listed:
        n = min(len(listed), int(rng.integers(1, 4)))
        group, listed = listed[:n], listed[n:]
        section = max(_SECTION[k] for k in group)
        planned.append((section, _sentence(_negation_text(group, rng), negated=group)))
    cardio = "cardiomegaly" in chosen
    medi = "wide_mediastinum" in chosen or (
        cardio and "wide_mediastinum" in absent and rng.random() < 0.4
    )
    heart = _heart_statement(cardio, medi, rng)
    if heart is not None:
        planned.append((3, _sentence(heart[0], negated=heart[1])))
    if "rib_fracture" in chosen:
        planned.append(
            (4, _sentence(_negation_text(["rib_fracture"], rng), negated=["rib_fracture"]))
        )

    # normal statements without a labeler mention
    if "rib_fracture" not in present and "rib_fracture" not in chosen and rng.random() < 0.3:
        bones = _pick(
            rng,
            (
                "no acute osseous abnormality",
                "osseous structures are unremarkable",
                "no acute osseous abnormality",
                "the visualized osseous structures / soft tissues are unremarkable",
            ),
        )
        planned.append((4, _sentence(bones)))
    if not findings and rng.random() < 0.25:
        planned.append((5, _sentence("no acute cardiopulmonary process")))

    if rng.random() < 0.12:
        # devices described last
        planned = [(4.5 if sec == 0 and s.device_kinds else sec, s) for sec, s in planned]
    planned.sort(key=lambda item: item[0])  # stable: keeps the order within a section
    return [s for _, s in planned]


# --- dictation timing -----------------------------------------------------------------------

_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def _syllables(word: str) -> int:
    total = 0
    for part in word.split("-"):
        n = len(_VOWEL_GROUPS.findall(part))
        if n > 1 and part.endswith("e") and not part.endswith(("le", "ee")):
            n -= 1
        total += max(n, 1)
    return total


def _check_sentence(text: str) -> None:
    ok = (
        text.endswith(".")
        and "." not in text[:-1]
        and text == text.lower()
        and text == text.strip()
        and "  " not in text
        and ":" not in text
        and " ," not in text
        and not re.search(r",(?! )", text)
        and not text.startswith((",", "."))
    )
    if not ok:
        raise ValueError(f"sentence breaks the transcription conventions: {text!r}")


def dictate(
    sentences: Sequence[PlannedSentence], rng: np.random.Generator, *, t_start: float
) -> Dictation:
    """Speak the sentences: the transcription, its timed tokens and per-sentence timings.

    ``t_start`` (seconds from the audio start) is when the first word begins; it is rounded to
    centiseconds. Word durations follow syllable counts at a per-dictation speech rate; ``.`` and
    ``,`` last 0-0.35 s; pauses between sentences are 0.4-3 s, occasionally longer.
    """
    if not sentences:
        raise ValueError("a dictation needs at least one sentence")
    if t_start < 0:
        raise ValueError(f"t_start must be >= 0, not {t_start}")
    for s in sentences:
        _check_sentence(s.text)
    transcription = " ".join(s.text for s in sentences)

    scale = float(rng.uniform(0.8, 1.2))  # speaker's slowness
    gap_prob = float(rng.uniform(0.05, 0.2))
    pause_median = float(rng.uniform(0.6, 1.3))

    now = round(t_start * 100)  # centiseconds
    tokens: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    first_token: list[int] = []
    for n, s in enumerate(sentences):
        if n > 0:
            if rng.random() < 0.07:
                pause = rng.uniform(3.0, 8.0)
            else:
                pause = float(np.clip(rng.lognormal(np.log(pause_median), 0.45), 0.4, 3.0))
            now += round(pause * 100)
        first_token.append(len(tokens))
        for k, tok in enumerate(tokenize(s.text)):
            if tok in (".", ","):
                dur = 0 if rng.random() < 0.25 else int(rng.integers(3, 36))
            else:
                if k > 0 and rng.random() < gap_prob:
                    now += int(rng.integers(2, 26))
                sec = (0.07 + 0.12 * _syllables(tok)) * scale * rng.lognormal(0.0, 0.18)
                if len(tok) <= 2:
                    sec *= 0.6
                dur = round(float(np.clip(sec, 0.06, 1.2)) * 100)
                if rng.random() < 0.03:
                    dur = 0  # not captured by the speech engine
            tokens.append(tok)
            starts.append(now)
            ends.append(now + dur)
            now += dur

    words = tuple(Word(t, a / 100, b / 100) for t, a, b in zip(tokens, starts, ends, strict=True))
    # character offsets of each token, rebuilt as the reference does
    tok_begin: list[int] = []
    length = 0
    for i, tok in enumerate(tokens):
        if i > 0 and tok not in (".", ","):
            length += 1
        tok_begin.append(length)
        length += len(tok)
    if length != len(transcription):
        raise AssertionError("token offsets do not rebuild the transcription")

    timings: list[SentenceTiming] = []
    char = 0
    for n, s in enumerate(sentences):
        last_tok = (first_token[n + 1] if n + 1 < len(sentences) else len(tokens)) - 1
        times = []
        for m in s.mentions:
            pos = char + m.start
            idx = bisect_right(tok_begin, pos) - 1
            times.append(starts[idx] / 100)
        if s.mentions:
            offsets = [m.start for m in s.mentions]
            first = times[offsets.index(min(offsets))]
            last = times[offsets.index(max(offsets))]
        else:
            first = last = None
        timings.append(
            SentenceTiming(
                char_start=char,
                char_end=char + len(s.text),
                start=starts[first_token[n]] / 100,
                end=ends[last_tok] / 100,
                mention_times=tuple(times),
                first_mention=first,
                last_mention=last,
            )
        )
        char += len(s.text) + 1
    return Dictation(transcription, words, tuple(timings))
