"""Benchmark of the report labeler: reports per second on one core, and (``--compare``) status
accuracy and speed against ConText (medspacy) and NegEx (negspacy) on the same mention spans.

    python bench/bench_labeler.py                 # speed of gazeloc's own rules engine
    python bench/bench_labeler.py --compare       # also medspacy / negspacy, if importable

Reports are built from the hand-written sentences of ``tests/test_labeler_cases.py``
(seeded) at three lengths: about 200 characters (the synthetic dictations average 184),
about 350 characters (about 60 tokens, a typical REFLACX dictation) and about 1,000
characters (a long report).

Accuracy: for every expected mention, the gold span is given to ConText and NegEx and their
status (positive / uncertain / negative) is compared with the expected one; gazeloc's engine
finds spans itself, and its status is that of its mention of the category that overlaps the
gold span most (no such mention counts as wrong). "present/absent" compares present
(positive or uncertain) against absent (negative or no mention). Two sets: the hand-written
development cases of the tests, and ``HELD_OUT`` below.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gazeloc.labeler import label_report  # noqa: E402


def load_cases() -> tuple[list[tuple[str, tuple[str, ...]]], Callable]:
    spec = importlib.util.spec_from_file_location("cases", ROOT / "tests/test_labeler_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CASES, module.expected_of


# Sentences written after the rules were frozen and never used to change them: a small check
# of how the engine does on phrasings it was not developed on (same notation as the cases).
HELD_OUT: list[tuple[str, tuple[str, ...]]] = [
    ("there is a moderate sized right pleural effusion.", ("PLEU pleural effusion pos",)),
    ("no large pleural effusions are identified.", ("PLEU pleural effusions neg",)),
    ("there is possibly a trace left effusion.", ("PLEU effusion unc",)),
    ("the small right effusion is decreased in size.", ("PLEU effusion pos",)),
    ("the right costophrenic angle is not well visualized.", ("PLEU costophrenic angle unc",)),
    ("there is no visible pneumothorax.", ("PTX pneumothorax neg",)),
    ("a small residual left apical pneumothorax remains.", ("PTX pneumothorax pos",)),
    (
        "no pneumothorax is appreciated following chest tube removal.",
        ("PTX pneumothorax neg", "DEV chest tube neg"),
    ),
    ("mild interstitial pulmonary edema has developed.", ("EDEMA pulmonary edema pos",)),
    ("there is no evidence of congestive heart failure.", ("EDEMA congestive heart failure neg",)),
    ("edema is less likely.", ("EDEMA edema unc",)),
    ("vascular congestion has improved.", ("EDEMA vascular congestion unc",)),
    (
        "patchy right lower lobe airspace disease could represent pneumonia.",
        ("CONS airspace disease pos", "GGO airspace disease pos", "CONS pneumonia unc"),
    ),
    (
        "there is a dense left lower lobe consolidation with air bronchograms.",
        ("CONS consolidation pos", "CONS air bronchograms pos"),
    ),
    ("no focal consolidation is appreciated.", ("CONS consolidation neg",)),
    ("the previously seen right middle lobe pneumonia has cleared.", ("CONS pneumonia neg",)),
    ("there is streaky atelectasis at both lung bases.", ("ATEL streaky atelectasis pos",)),
    ("discoid atelectasis at the right base is unchanged.", ("ATEL discoid atelectasis pos",)),
    ("the left lower lobe is collapsed.", ()),
    ("no significant atelectasis.", ("ATEL atelectasis neg",)),
    (
        "hazy opacities in the bilateral lower lungs may reflect atelectasis or aspiration.",
        ("GGO hazy opacities pos", "ATEL atelectasis unc", "CONS aspiration unc"),
    ),
    (
        "subtle ground glass opacity in the right upper lobe is not excluded.",
        ("GGO ground glass opacity unc",),
    ),
    (
        "coarse reticular markings at the bases are consistent with fibrosis.",
        ("ILD reticular markings pos", "ILD fibrosis pos"),
    ),
    ("there is no evidence of interstitial lung disease.", ("ILD interstitial lung disease neg",)),
    ("findings are suggestive of pulmonary fibrosis.", ("ILD fibrosis unc",)),
    (
        "a rounded density in the left upper lobe could be a nodule.",
        ("NOD rounded density pos", "NOD nodule unc"),
    ),
    ("there is a large right upper lobe mass.", ("NOD mass pos",)),
    ("no discrete pulmonary nodule or mass is seen.", ("NOD nodule neg", "NOD mass neg")),
    ("multiple calcified granulomas are present.", ()),
    ("the cardiac silhouette is mildly enlarged.", ("ECS cardiac silhouette pos",)),
    ("the heart size is difficult to evaluate given the projection.", ("ECS heart size unc",)),
    ("the heart is normal in size.", ("ECS heart neg",)),
    ("moderate cardiomegaly is again seen.", ("ECS cardiomegaly pos",)),
    (
        "the cardiomediastinal silhouette is unremarkable.",
        ("ECS cardiomediastinal silhouette neg", "AMC cardiomediastinal silhouette neg"),
    ),
    ("the mediastinum is not widened.", ("AMC mediastinum neg",)),
    ("the aortic knob is prominent.", ("AMC aortic knob pos",)),
    ("there is a widened superior mediastinum.", ("AMC widened superior mediastinum pos",)),
    ("the mediastinal contours are unchanged.", ("AMC mediastinal contours unc",)),
    ("the hila are enlarged bilaterally.", ("HIL hila pos",)),
    (
        "no hilar or mediastinal lymphadenopathy.",
        ("HIL lymphadenopathy neg", "AMC mediastinal lymphadenopathy neg"),
    ),
    ("the left hilum appears prominent, possibly vascular.", ("HIL hilum pos",)),
    ("a large hiatal hernia is present.", ("HH hiatal hernia pos",)),
    ("there is a probable hiatal hernia.", ("HH hiatal hernia unc",)),
    ("the lungs are hyperexpanded.", ("EMPH hyperexpanded pos",)),
    ("there are emphysematous changes in the upper lobes.", ("EMPH emphysematous pos",)),
    ("lung volumes are normal.", ("EMPH lung volumes neg",)),
    ("no subcutaneous emphysema.", ()),
    ("there is an acute appearing fracture of the left eighth rib.", ("FX fracture pos",)),
    ("there are remote healed fractures of the left ribs.", ()),
    ("no displaced fractures are identified.", ("FX fractures neg",)),
    ("a subtle fracture of the right sixth rib is questioned.", ("FX fracture unc",)),
    ("the enteric tube has been removed.", ("DEV enteric tube neg",)),
    ("right internal jugular catheter terminates in the right atrium.", ("DEV catheter pos",)),
    ("a left chest tube is in place.", ("DEV chest tube pos",)),
    ("there is a dual lead pacemaker.", ("DEV pacemaker pos",)),
    ("no lines or tubes.", ("DEV lines neg", "DEV tubes neg")),
    ("no acute osseous abnormality.", ()),
    ("the visualized upper abdomen is unremarkable.", ()),
    (
        "there is no pleural effusion, pneumothorax, or focal airspace consolidation.",
        ("PLEU pleural effusion neg", "PTX pneumothorax neg", "CONS airspace consolidation neg"),
    ),
    (
        "mild cardiomegaly but no pulmonary edema.",
        ("ECS cardiomegaly pos", "EDEMA pulmonary edema neg"),
    ),
]


def make_reports(sentences: list[str], target_chars: int, n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    reports = []
    for _ in range(n):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < target_chars:
            parts.append(rng.choice(sentences).lower())
        reports.append(" ".join(parts))
    return reports


def rate(fn: Callable[[str], object], reports: list[str], min_seconds: float = 2.0) -> float:
    """Reports per CPU second of this process (best of repeated passes, ``min_seconds`` in all).

    CPU time rather than wall time: the development machine is shared, and one process uses
    one core.
    """
    for r in reports[:20]:
        fn(r)
    best = 0.0
    spent = 0.0
    while spent < min_seconds:
        t0 = time.process_time()
        for r in reports:
            fn(r)
        dt = time.process_time() - t0
        spent += dt
        best = max(best, len(reports) / dt)
    return best


# --- gold spans of the case table -------------------------------------------------------------


def gold_spans(cases, expected_of) -> list[tuple[str, str, int, int, str]]:
    """(text, category, start, end, status) of every expected mention (first occurrence)."""
    out = []
    for text, specs in cases:
        used: set[tuple[str, int]] = set()
        for spec in specs:
            category, phrase, status = expected_of(spec)
            start = text.find(phrase)
            while (category, start) in used:
                start = text.find(phrase, start + 1)
            used.add((category, start))
            out.append((text, category, start, start + len(phrase), status))
    return out


def own_status(text: str, category: str, start: int, end: int) -> str | None:
    for m in label_report(text):
        if m.category == category and (m.start, m.end) == (start, end):
            return m.status
    return None


def score(golds, classify: Callable[[str, list[tuple[int, int]]], list[str | None]]) -> dict:
    by_text: dict[str, list[int]] = {}
    for i, g in enumerate(golds):
        by_text.setdefault(g[0], []).append(i)
    predicted: list[str | None] = [None] * len(golds)
    for text, idx in by_text.items():
        spans = [(golds[i][2], golds[i][3]) for i in idx]
        categories = [golds[i][1] for i in idx]
        for i, status in zip(idx, classify(text, spans, categories), strict=True):
            predicted[i] = status
    n = len(golds)
    exact = sum(p == g[4] for p, g in zip(predicted, golds, strict=True))
    present = {"positive", "uncertain"}
    detected = sum(
        (p in present) == (g[4] in present) for p, g in zip(predicted, golds, strict=True)
    )
    per = {}
    for status in ("positive", "uncertain", "negative"):
        rows = [(p, g) for p, g in zip(predicted, golds, strict=True) if g[4] == status]
        per[status] = (sum(p == g[4] for p, g in rows), len(rows))
    return {"n": n, "exact": exact / n, "detected": detected / n, "per": per}


def own_classifier(text, spans, categories):
    """Status of the engine's mention of that category that overlaps the gold span most."""
    mentions = label_report(text)
    out = []
    for (a, b), category in zip(spans, categories, strict=True):
        best, overlap = None, 0
        for m in mentions:
            o = min(b, m.end) - max(a, m.start)
            if m.category == category and o > overlap:
                best, overlap = m.status, o
        out.append(best)
    return out


def _dedupe(spans):
    """Longest non-overlapping spans (spaCy entities may not overlap) and a map to them."""
    order = sorted(set(spans), key=lambda s: (s[0] - s[1], s[0]))
    kept: list[tuple[int, int]] = []
    for s in order:
        if all(s[1] <= k[0] or k[1] <= s[0] for k in kept):
            kept.append(s)
    home = {}
    for s in spans:
        home[s] = next(k for k in kept if k[0] < s[1] and s[0] < k[1])
    return sorted(kept), home


def medspacy_classifier():
    import medspacy
    from loguru import logger

    logger.remove()  # PyRuSH logs every sentence at DEBUG level; do not time the logging
    nlp = medspacy.load()
    if "medspacy_target_matcher" in nlp.pipe_names:
        nlp.remove_pipe("medspacy_target_matcher")

    def run(text, spans, categories=None):
        kept, home = _dedupe(spans)
        doc = nlp.make_doc(text)
        ents = [doc.char_span(a, b, label="FINDING", alignment_mode="expand") for a, b in kept]
        doc.ents = [e for e in ents if e is not None]
        for _, proc in nlp.pipeline:
            doc = proc(doc)
        status = {}
        for (a, b), ent in zip(kept, ents, strict=True):
            if ent is None:
                continue
            ent = next(e for e in doc.ents if e.start_char == ent.start_char)
            if ent._.is_uncertain or ent._.is_hypothetical:
                status[(a, b)] = "uncertain"
            elif ent._.is_negated:
                status[(a, b)] = "negative"
            else:
                status[(a, b)] = "positive"
        return [status.get(home[s]) for s in spans]

    return run


def negspacy_classifier():
    import spacy
    from negspacy.negation import Negex  # noqa: F401  (registers the factory)
    from negspacy.termsets import termset

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe(
        "negex",
        config={"neg_termset": termset("en_clinical").get_patterns(), "ent_types": ["FINDING"]},
    )

    def run(text, spans, categories=None):
        kept, home = _dedupe(spans)
        doc = nlp.make_doc(text)
        ents = [doc.char_span(a, b, label="FINDING", alignment_mode="expand") for a, b in kept]
        doc.ents = [e for e in ents if e is not None]
        for _, proc in nlp.pipeline:
            doc = proc(doc)
        status = {}
        for (a, b), ent in zip(kept, ents, strict=True):
            if ent is None:
                continue
            ent = next(e for e in doc.ents if e.start_char == ent.start_char)
            status[(a, b)] = "negative" if ent._.negex else "positive"
        return [status.get(home[s]) for s in spans]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", action="store_true", help="also medspacy and negspacy")
    parser.add_argument("--reports", type=int, default=400, help="reports per length")
    args = parser.parse_args()

    cases, expected_of = load_cases()
    sentences = [text for text, _ in cases]
    print(f"python {platform.python_version()} on {platform.machine()}, one process")
    lengths = {"~200 chars": 180, "~350 chars": 350, "~1,000 chars": 1000}
    corpora = {
        k: make_reports(sentences, v, args.reports, seed=i)
        for i, (k, v) in enumerate(lengths.items())
    }
    for name, reports in corpora.items():
        mean = sum(len(r) for r in reports) / len(reports)
        print(
            f"gazeloc rules, {name} (mean {mean:.0f}): {rate(label_report, reports):,.0f} reports/s"
        )

    sets = {
        f"{len(cases)} hand-written development cases": gold_spans(cases, expected_of),
        f"{len(HELD_OUT)} held-out sentences": gold_spans(HELD_OUT, expected_of),
    }
    methods = {"gazeloc rules": own_classifier}
    if args.compare:
        for name, factory in (
            ("ConText (medspacy)", medspacy_classifier),
            ("NegEx (negspacy)", negspacy_classifier),
        ):
            try:
                methods[name] = factory()
            except ImportError as exc:
                print(f"{name}: not importable here ({exc})")
    for label, golds in sets.items():
        print(f"\nstatus of {len(golds)} gold mentions, {label}:")
        for name, classify in methods.items():
            s = score(golds, classify)
            per = ", ".join(f"{k} {a}/{b}" for k, (a, b) in s["per"].items())
            print(
                f"  {name}: exact status {s['exact']:.3f}, present/absent {s['detected']:.3f}"
                f" ({per})"
            )
    if args.compare:
        reports = corpora["~350 chars"]
        spans_of = {r: [(m.start, m.end) for m in label_report(r)] for r in reports}
        for name, classify in methods.items():
            if name == "gazeloc rules":
                continue
            speed = rate(lambda r, c=classify: c(r, spans_of[r]), reports)
            print(f"  {name} speed, ~350 chars, given the spans: {speed:,.0f} reports/s")


if __name__ == "__main__":
    main()
