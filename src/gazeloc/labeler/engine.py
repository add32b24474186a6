"""The rule engine: mentions, their negation/uncertainty status, sentences and aggregation.

Steps for one report (all on tokens that keep their offsets into the raw text):

1. **Mentions.** Every category phrase is matched. A mention that overlaps one of its
   category's ``not`` phrases is dropped; overlapping mentions of one category keep the
   longest. Mentions of all categories that overlap form a *cluster*, which gets one status.
2. **Triggers.** Trigger phrases of all kinds are matched left to right, the longest at each
   position (so "cannot exclude" is never read as a negation, "not resolved" never as
   "resolved"); a trigger that overlaps a mention is ignored. Each trigger reaches clusters
   by its scope:

   * ``following``: every cluster after it up to the end of its clause (sentence end, or a
     terminator phrase, or a trigger of another kind that starts a new list item);
   * ``preceding``: the nearest cluster before it (up to 8 words, no punctuation or
     conjunction in between) and the clusters coordinated with that one;
   * ``either``: the nearest cluster after it (up to 5 words, no punctuation, conjunction or
     verb in between) and its coordinated clusters, else the nearest before it (5 words);
   * ``both``: the nearest cluster on each side (4 words) and their coordinated clusters.

   Coordination: from a cluster, a connector ("," "and" "or" "nor") followed within a few
   words by another cluster reaches that one too ("no effusion, consolidation or
   pneumothorax").
3. **Status** (CheXpert/NegBio priority): pre-negation uncertainty -> ``uncertain``; else
   negation -> ``negative``; else post-negation uncertainty, or a phrase that is uncertain by
   itself -> ``uncertain``; else ``positive``. A *neutral* mention (heart size, mediastinum,
   hila, ...) is positive only when an ``abnormal`` qualifier of its category stands near it
   in its clause ("the heart is enlarged"); else ``uncertain`` if described as stable or
   unchanged; else it is not a mention at all. An *anatomy* mention (reference-mode rule
   files) is read the same way except that, with nothing said about it, it is ``positive``:
   named anatomy is a mention of the finding unless negated or hedged, as the authors'
   labeler reads "the heart" or "mediastinum".

Modes (:data:`~gazeloc.labeler.rules_io.MODES`): ``gazeloc`` (the rule files of
``rules/categories/``) and ``reference``, which takes Enlarged cardiac silhouette, Abnormal
mediastinal contour and Lung nodule or mass from ``rules/reference/categories/``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from gazeloc.labeler.phrases import Tokens, tokenize
from gazeloc.labeler.rules_io import CATEGORIES, PhraseRole, Rules, TriggerRule, load_rules

STATUSES: tuple[str, ...] = ("positive", "uncertain", "negative")
STATUS_VALUE: dict[str, int] = {"positive": 1, "uncertain": -1, "negative": 0}
"""Report-level values of the labels files: 1 positive, -1 uncertain, 0 negative."""

_FOLLOW_GAP = 5  # words between an "either" trigger and the finding after it
_BEFORE_GAP = 8  # words between a finding and a "preceding" trigger after it
_BOTH_GAP = 4  # words between "or"/"versus" and the findings on each side
_LIST_GAP = 4  # words between a connector and the next finding of a list
_QUALIFIER_GAP = 6  # words between a neutral mention and its abnormal qualifier

_ROLE_ORDER = {"mention": 0, "uncertain": 1, "anatomy": 2, "neutral": 3}
_SENTENCE_END = re.compile(r"\.(?![A-Za-z0-9])")


@dataclass(frozen=True, slots=True)
class Mention:
    """One mention of one category in a report.

    ``text[start:end]`` (character offsets into the raw report) is the phrase the rule
    matched; ``model_labels`` are the canonical model labels of ``category`` (may be empty);
    ``status`` is ``"positive"``, ``"uncertain"`` or ``"negative"``.
    """

    category: str
    model_labels: tuple[str, ...]
    start: int
    end: int
    status: str


@dataclass(frozen=True, slots=True)
class _Unit:
    category: str
    role: str
    start: int  # token index
    end: int  # token index, exclusive
    lead_space: bool = False  # the mention starts at the space before token ``start``


@dataclass(frozen=True, slots=True)
class _Trigger:
    rule: TriggerRule
    start: int
    end: int
    covers: tuple[int, ...] = ()  # anatomy clusters inside the trigger phrase


class Labeler:
    """A report labeler for one set of compiled rules (see :func:`load_rules`)."""

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules if rules is not None else load_rules()

    # -- step 1: mentions --------------------------------------------------------------------

    def _units(
        self, tokens: Tokens, text: str
    ) -> tuple[list[_Unit], dict[str, list[tuple[int, int]]]]:
        cands: dict[str, list[tuple[int, int, str, bool]]] = {}
        nots: dict[str, list[tuple[int, int]]] = {}
        abnormal: dict[str, list[tuple[int, int]]] = {}
        for m in self.rules.phrases.find_all(tokens):
            role: PhraseRole = m.payload
            if role.role == "not":
                nots.setdefault(role.category, []).append((m.start, m.end))
            elif role.role == "abnormal":
                abnormal.setdefault(role.category, []).append((m.start, m.end))
            elif not role.lead_space or _space_before(tokens, text, m.start):
                cands.setdefault(role.category, []).append(
                    (m.start, m.end, role.role, role.lead_space)
                )
        units: list[_Unit] = []
        for category, found in cands.items():
            blocked = nots.get(category, ())
            found = [
                f
                for f in found
                if not any(f[0] < b_end and b_start < f[1] for b_start, b_end in blocked)
            ]
            found.sort(key=lambda f: (f[0], f[0] - f[1], _ROLE_ORDER[f[2]]))
            last_end = -1
            for start, end, role, lead in found:
                if start >= last_end:
                    units.append(_Unit(category, role, start, end, lead))
                    last_end = end
        return units, abnormal

    # -- step 2: scopes ------------------------------------------------------------------------

    def label(self, text: str) -> list[Mention]:
        """Every mention of every category in ``text``, in text order (see module doc)."""
        if not isinstance(text, str):
            raise TypeError(f"a report must be a str, not {type(text).__name__}")
        tokens = tokenize(text)
        n = len(tokens)
        if n == 0:
            return []
        units, abnormal = self._units(tokens, text)
        if not units:
            return []
        rules = self.rules
        norm, punct = tokens.norm, tokens.punct

        # clusters of overlapping mentions (token ranges)
        spans = sorted({(u.start, u.end) for u in units})
        clusters: list[list[int]] = []
        for start, end in spans:
            if clusters and start < clusters[-1][1]:
                clusters[-1][1] = max(clusters[-1][1], end)
            else:
                clusters.append([start, end])
        cluster_at = [-1] * n
        for ci, (start, end) in enumerate(clusters):
            for i in range(start, end):
                cluster_at[i] = ci

        # A trigger phrase that takes in anatomy words ("normal contour", "normal in size and
        # contour") says that of the anatomy: it reaches those clusters too. A trigger that
        # overlaps any other mention is ignored.
        anatomy_only = [True] * len(clusters)
        for u in units:
            if u.role != "anatomy":
                anatomy_only[cluster_at[u.start]] = False
        triggers: list[_Trigger] = []
        for m in rules.triggers.find_longest(tokens, rules.trigger_rank):
            inside = sorted({cluster_at[i] for i in range(m.start, m.end) if cluster_at[i] >= 0})
            if all(anatomy_only[ci] for ci in inside):
                triggers.append(_Trigger(m.payload, m.start, m.end, tuple(inside)))
        trig_at = [-1] * n
        for ti, t in enumerate(triggers):
            for i in range(t.start, t.end):
                if cluster_at[i] < 0:
                    trig_at[i] = ti
        stop = [p and norm[i] == "." for i, p in enumerate(punct)]
        for m in rules.terminators.find_longest(tokens):
            if all(trig_at[i] < 0 for i in range(m.start, m.end)):
                for i in range(m.start, m.end):
                    stop[i] = True

        conjunctions, verbs, connectors = rules.conjunctions, rules.verbs, rules.connectors

        def nearest(i: int, step: int, max_gap: int) -> int:
            gap = 0
            while 0 <= i < n:
                if stop[i] or punct[i]:
                    return -1
                if cluster_at[i] >= 0:
                    return cluster_at[i]
                word = norm[i]
                if word in conjunctions or (step > 0 and word in verbs):
                    return -1
                gap += 1
                if gap > max_gap:
                    return -1
                i += step
            return -1

        def with_list(ci: int, step: int) -> list[int]:
            out = [ci]
            while True:
                start, end = clusters[ci]
                i = end if step > 0 else start - 1
                seen_connector = False
                gap = 0
                nxt = -1
                while 0 <= i < n:
                    if stop[i]:
                        break
                    word = norm[i]
                    if word in connectors:
                        seen_connector = True
                        i += step
                        continue
                    if punct[i] or word in verbs:
                        break
                    if cluster_at[i] >= 0:
                        if seen_connector:
                            nxt = cluster_at[i]
                        break
                    if trig_at[i] >= 0 and triggers[trig_at[i]].rule.scope != "both":
                        break
                    gap += 1
                    if gap > _LIST_GAP:
                        break
                    i += step
                if nxt < 0:
                    return out
                out.append(nxt)
                ci = nxt

        def following(t: _Trigger) -> list[int]:
            out: list[int] = []
            i = t.end
            after_connector = after_mention = False
            while i < n:
                if stop[i]:
                    break
                ti = trig_at[i]
                if ti >= 0:
                    other = triggers[ti]
                    new_item = after_connector or after_mention
                    if other.rule.kind != t.rule.kind and other.rule.scope != "both" and new_item:
                        break
                    after_connector = after_mention = False
                    i = other.end
                    continue
                ci = cluster_at[i]
                if ci >= 0:
                    out.append(ci)
                    i = clusters[ci][1]
                    after_mention, after_connector = True, False
                    continue
                after_connector = norm[i] in connectors
                after_mention = False
                i += 1
            return out

        def reach(t: _Trigger) -> list[int]:
            scope = t.rule.scope
            if scope == "following":
                return following(t)
            if scope == "preceding":
                ci = nearest(t.start - 1, -1, _BEFORE_GAP)
                return with_list(ci, -1) if ci >= 0 else []
            if scope == "either":
                ci = nearest(t.end, 1, _FOLLOW_GAP)
                if ci >= 0:
                    return with_list(ci, 1)
                ci = nearest(t.start - 1, -1, _FOLLOW_GAP)
                return with_list(ci, -1) if ci >= 0 else []
            if scope == "both":
                out = []
                ci = nearest(t.end, 1, _BOTH_GAP)
                if ci >= 0:
                    out += with_list(ci, 1)
                ci = nearest(t.start - 1, -1, _BOTH_GAP)
                if ci >= 0:
                    out += with_list(ci, -1)
                return out
            return []

        kinds: list[set[str]] = [set() for _ in clusters]
        for t in triggers:
            if t.rule.kind != "pseudo":
                for ci in (*reach(t), *t.covers):
                    kinds[ci].add(t.rule.kind)

        # -- step 3: status --------------------------------------------------------------------
        def qualified(u: _Unit) -> bool:
            for q_start, q_end in abnormal.get(u.category, ()):
                if q_end <= u.start:
                    between = range(q_end, u.start)
                elif q_start >= u.end:
                    between = range(u.end, q_start)
                else:
                    return True
                if len(between) <= _QUALIFIER_GAP and not any(stop[i] or punct[i] for i in between):
                    return True
            return False

        mentions: list[Mention] = []
        for u in units:
            found = kinds[cluster_at[u.start]]
            if "pre_negation_uncertainty" in found:
                status = "uncertain"
            elif "negation" in found:
                status = "negative"
            elif "post_negation_uncertainty" in found or u.role == "uncertain":
                status = "uncertain"
            elif u.role in ("neutral", "anatomy"):
                if qualified(u):
                    status = "positive"
                elif "stability" in found:
                    status = "uncertain"
                elif u.role == "anatomy":
                    status = "positive"
                else:
                    continue
            else:
                status = "positive"
            mentions.append(
                Mention(
                    u.category,
                    rules.model_labels[u.category],
                    tokens.start[u.start] - (1 if u.lead_space else 0),
                    tokens.end[u.end - 1],
                    status,
                )
            )
        mentions.sort(key=lambda m: (m.start, m.end, m.category))
        return mentions


def _space_before(tokens: Tokens, text: str, i: int) -> bool:
    """Whether token ``i`` follows a space inside its sentence (not first in the sentence)."""
    if i == 0:
        return False
    before = i - 1
    sentence_end = tokens.punct[before] and tokens.norm[before] == "."
    start = tokens.start[i]
    return not sentence_end and start > 0 and text[start - 1].isspace()


@lru_cache(maxsize=2)
def default_labeler(mode: str = "gazeloc") -> Labeler:
    """The labeler with the package's rule files for a mode (loaded once per mode)."""
    return Labeler(load_rules(mode=mode))


def label_report(text: str, mode: str = "gazeloc") -> list[Mention]:
    """Every mention in a report: one :class:`Mention` per (matched span, category).

    ``start``/``end`` are character offsets into ``text`` itself (no cleaning). An empty or
    blank report has no mentions; a non-string raises :class:`TypeError`. ``mode``: the
    labeler mode (module doc).
    """
    return default_labeler(mode).label(text)


# --- sentences ----------------------------------------------------------------------------------


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` character spans of the sentences of a report.

    A sentence ends at a ``.`` that is not followed by a letter or digit (the REFLACX rule:
    such a ``.`` is its own token in ``timestamps_transcription.csv``), and includes it;
    leading whitespace is not part of a sentence. Text after the last such ``.`` is a final
    sentence if it is not blank.
    """
    if not isinstance(text, str):
        raise TypeError(f"a report must be a str, not {type(text).__name__}")
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        start = pos
        while start < m.start() and text[start].isspace():
            start += 1
        spans.append((start, m.end()))
        pos = m.end()
    rest = text[pos:]
    if rest.strip():
        spans.append((pos + len(rest) - len(rest.lstrip()), pos + len(rest.rstrip())))
    return spans


def sentence_index(spans: Sequence[tuple[int, int]], offset: int) -> int:
    """Index of the sentence holding character ``offset``: the first whose end is beyond it."""
    ends = [end for _, end in spans]
    i = bisect.bisect_right(ends, offset)
    if i >= len(spans):
        raise ValueError(f"offset {offset} is after the last sentence")
    return i


def mentions_by_sentence(
    text: str, mentions: Sequence[Mention] | None = None, *, present_only: bool = True
) -> list[list[Mention]]:
    """The mentions of each sentence (positive and uncertain only, by default).

    These drive the label-specific heatmaps: a sentence with a present mention of a label
    gives that label's fixation window.
    """
    spans = split_sentences(text)
    found = label_report(text) if mentions is None else mentions
    out: list[list[Mention]] = [[] for _ in spans]
    for m in found:
        if present_only and m.status == "negative":
            continue
        out[sentence_index(spans, m.start)].append(m)
    return out


# --- report-level aggregation (reference-method.md §2.6) --------------------------------------


def aggregate(statuses: Iterable[str]) -> int | None:
    """Report-level value of one category from its mentions' statuses.

    None when not mentioned; 1 if any mention is positive; else -1 if any is uncertain; else 0
    (so negative + uncertain -> uncertain, negative/uncertain + positive -> positive).
    """
    seen = set(statuses)
    unknown = seen - set(STATUSES)
    if unknown:
        raise ValueError(f"unknown statuses {sorted(unknown)}")
    if not seen:
        return None
    if "positive" in seen:
        return 1
    if "uncertain" in seen:
        return -1
    return 0


def report_labels(mentions: Iterable[Mention]) -> dict[str, int | None]:
    """Report-level value of every category (None where it is not mentioned)."""
    statuses: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for m in mentions:
        statuses[m.category].append(m.status)
    return {c: aggregate(s) for c, s in statuses.items()}
