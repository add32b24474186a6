"""Tests of the synthetic dictated reports (gazeloc.synthetic.reports)."""

from __future__ import annotations

import re
from itertools import pairwise

import numpy as np
import pytest

from gazeloc.synthetic.reports import (
    Dictation,
    PlannedSentence,
    compose_report,
    dictate,
    tokenize,
)
from gazeloc.synthetic.types import DEVICE_KINDS, FINDING_KINDS, Device, Finding, Region

# Substrings of the REFLACX labeler's mention phrases: a mention span must contain one of them.
MENTION_STEMS: dict[str, tuple[str, ...]] = {
    "effusion": ("effusion", "blunt"),
    "pneumothorax": ("pneumothora",),
    "nodule": ("nodul",),
    "mass": ("mass",),
    "consolidation": ("consolidat",),
    "atelectasis": ("atelecta", "collapse", "volume loss"),
    "edema": ("edema",),
    "groundglass": ("ground-glass opaci", "hazy opaci"),
    "interstitial": ("interstitial", "fibrosis", "reticular"),
    "cardiomegaly": ("cardiomegaly", "cardiac silhouette", "heart size", "cardiac enlargement"),
    "wide_mediastinum": ("mediastin",),
    "rib_fracture": ("fracture",),
    "hilar_enlargement": ("hilar enlargement", "hilar adenopathy", "lymphadenopathy", "hilum"),
    "emphysema": ("emphysema", "hyperinflat"),
    "hiatal_hernia": ("hiatal hernia", "hiatus hernia"),
}
NEGATION_WORDS = ("no", "not", "normal", "without")
SIDES = ("right", "left", "bilateral")
ZONES = ("upper", "middle", "lower", "basal", "apical", "perihilar", "diffuse", "retrocardiac")
MIDLINE = {
    "cardiomegaly": "cardiac",
    "wide_mediastinum": "mediastinal",
    "hiatal_hernia": "retrocardiac",
}


def random_case(
    seed: int,
) -> tuple[list[Finding], list[int], list[Device], list[str], list[PlannedSentence], Dictation]:
    """Random findings/devices (built by hand), the planned sentences and their dictation."""
    rng = np.random.default_rng(seed)
    findings = []
    for _ in range(int(rng.choice([0, 1, 1, 2, 2, 3, 4]))):
        kind = str(rng.choice(FINDING_KINDS))
        if kind in MIDLINE:
            side, zone = "midline", MIDLINE[kind]
        else:
            side = str(rng.choice(SIDES))
            zone = "rib" if kind == "rib_fracture" else str(rng.choice(ZONES))
        region = Region(*rng.uniform(20, 200, size=4).tolist())
        size = str(rng.choice(["small", "moderate", "large"]))
        findings.append(Finding(kind, side, zone, (region,), float(rng.uniform(0.05, 1)), size))
    certainties = [int(rng.integers(1, 6)) for _ in findings]
    devices = [Device(k, ((0.0, 0.0), (5.0, 9.0))) for k in DEVICE_KINDS if rng.random() < 0.15]
    present = {f.kind for f in findings}
    absent = [k for k in FINDING_KINDS if k not in present and rng.random() < 0.8]
    sentences = compose_report(findings, certainties, devices, absent, rng)
    dictation = dictate(sentences, rng, t_start=float(rng.uniform(1, 12)))
    return findings, certainties, devices, absent, sentences, dictation


CASES = [random_case(seed) for seed in range(150)]


def test_tokenize_reflacx_example():
    text = (
        "endotracheal tube in standard position. small left pleural effusion, with adjacent "
        "atelectasis. cardiomegaly. no pneumothorax."
    )
    expected = (
        "endotracheal tube in standard position . small left pleural effusion , with adjacent "
        "atelectasis . cardiomegaly . no pneumothorax ."
    ).split(" ")
    assert tokenize(text) == expected
    assert len(tokenize(text)) == 20
    assert tokenize("no pneumothorax.") == ["no", "pneumothorax", "."]


@pytest.mark.parametrize("case", CASES[:60])
def test_text_conventions(case):
    *_, sentences, d = case
    text = d.transcription
    assert text == " ".join(s.text for s in sentences)
    assert text == text.lower() and text == text.strip()
    assert text.endswith(".") and "\n" not in text
    assert ":" not in text and ".." not in text and "  " not in text and " ," not in text
    assert not re.search(r"[,.](?! |$)", text), "punctuation must be followed by a space"
    assert all(("/" not in t) or t == "/" for t in tokenize(text))
    tokens = [w.text for w in d.words]
    assert tokens == tokenize(text)
    assert " ".join(tokens) == text.replace(".", " .").replace(",", " ,")
    assert all(t and ("." not in t or t == ".") for t in tokens)
    assert all(" " not in t for t in tokens)


def test_times_rounded_ordered_and_start_at_t_start():
    for *_, d in CASES:
        starts = [w.start for w in d.words]
        ends = [w.end for w in d.words]
        for a, b in zip(starts, ends, strict=True):
            assert round(a, 2) == a and round(b, 2) == b
            assert a <= b
        flat = [t for pair in zip(starts, ends, strict=True) for t in pair]
        assert all(x <= y for x, y in pairwise(flat))
    rng = np.random.default_rng(0)
    s = compose_report([], [], [], ["pneumothorax"], rng)
    assert dictate(s, rng, t_start=4.567).words[0].start == 4.57


def test_word_durations_and_pauses_are_realistic():
    durations, rates = [], []
    for *_, d in CASES:
        words = [w for w in d.words if w.text not in (".", ",")]
        durations += [w.end - w.start for w in words if w.end > w.start]
        for timing in d.sentences:
            assert 0 <= timing.end - timing.start < 40
        gaps = [b.start - a.end for a, b in pairwise(d.sentences)]
        assert all(g >= 0.4 - 1e-9 for g in gaps)
        spoken = d.words[-1].end - d.words[0].start
        pauses = sum(gaps)
        rates.append(len(words) / max(spoken - pauses, 1e-9))
    assert 0.25 <= float(np.median(durations)) <= 0.6
    assert 1.8 <= float(np.median(rates)) <= 3.5
    punct = [w.end - w.start for *_, d in CASES for w in d.words if w.text in (".", ",")]
    assert max(punct) <= 0.4 and min(punct) == 0


@pytest.mark.parametrize("case", CASES)
def test_sentences_tile_text_and_timings(case):
    *_, sentences, d = case
    text = d.transcription
    assert len(d.sentences) == len(sentences)
    assert d.sentences[0].char_start == 0 and d.sentences[-1].char_end == len(text)
    assert " ".join(text[t.char_start : t.char_end] for t in d.sentences) == text
    periods = [w for w in d.words if w.text == "."]
    assert len(periods) == len(sentences)
    index = 0
    for s, t in zip(sentences, d.sentences, strict=True):
        assert text[t.char_start : t.char_end] == s.text
        n = len(tokenize(s.text))
        assert t.start == d.words[index].start
        assert t.end == d.words[index + n - 1].end and d.words[index + n - 1].text == "."
        index += n


def _word_start_at(d: Dictation, pos: int) -> float:
    """Start time of the token whose characters include ``pos`` (rebuilt independently)."""
    length = 0
    for i, w in enumerate(d.words):
        if i > 0 and w.text not in (".", ","):
            length += 1
        if length <= pos < length + len(w.text):
            return w.start
        length += len(w.text)
    raise AssertionError("position outside the text")


@pytest.mark.parametrize("case", CASES)
def test_every_finding_mentioned_once_at_its_phrase(case):
    findings, certainties, _, _, sentences, d = case
    seen: list[int] = []
    for s, t in zip(sentences, d.sentences, strict=True):
        assert len(t.mention_times) == len(s.mentions)
        for m, time in zip(s.mentions, t.mention_times, strict=True):
            seen.append(m.finding)
            phrase = d.transcription[t.char_start + m.start : t.char_start + m.end]
            assert phrase == s.text[m.start : m.end]
            assert any(stem in phrase for stem in MENTION_STEMS[findings[m.finding].kind])
            assert m.status == ("positive" if certainties[m.finding] >= 4 else "uncertain")
            # whole words
            assert m.start == 0 or s.text[m.start - 1] == " "
            assert s.text[m.end] in " ,."
            assert time == _word_start_at(d, t.char_start + m.start)
        if s.mentions:
            offsets = [m.start for m in s.mentions]
            assert t.first_mention == _word_start_at(d, t.char_start + min(offsets))
            assert t.last_mention == _word_start_at(d, t.char_start + max(offsets))
            assert t.start <= t.first_mention <= t.last_mention <= t.end
        else:
            assert t.first_mention is None and t.last_mention is None
    assert sorted(seen) == list(range(len(findings)))


@pytest.mark.parametrize("case", CASES)
def test_negations_devices_and_normal_statements(case):
    findings, _, devices, absent, sentences, _ = case
    present = {f.kind for f in findings}
    described: list[str] = []
    for s in sentences:
        words = s.text[:-1].replace(",", "").split(" ")
        for kind in s.negated_kinds:
            assert kind in absent and kind not in present
            assert any(w in NEGATION_WORDS for w in words), s.text
        if s.negated_kinds:
            assert not s.mentions
        described += s.device_kinds
        if "lungs are clear" in s.text:
            assert not present & {
                "effusion",
                "pneumothorax",
                "consolidation",
                "atelectasis",
                "edema",
                "groundglass",
                "interstitial",
                "nodule",
                "mass",
                "emphysema",
            }
        if "osseous" in s.text:
            assert "rib_fracture" not in present
    assert sorted(described) == sorted({d.kind for d in devices})


def test_negated_kind_named_after_negation_word():
    rng = np.random.default_rng(3)
    named = {"pneumothorax": "pneumothorax", "effusion": "effusion", "edema": "edema"}
    found = 0
    for _ in range(40):
        sentences = compose_report([], [], [], list(named), rng)
        for s in sentences:
            for kind in s.negated_kinds:
                if kind in named:
                    head = s.text[: s.text.index(named[kind])]
                    assert re.search(r"\bno\b", head), s.text
                    found += 1
    assert found > 40


def test_certainty_shapes_wording():
    f = Finding("effusion", "left", "basal", (Region(10, 10, 5, 5),), 0.8, "small")
    hedges = {
        4: ("likely", "probable", "consistent", "suggestive"),
        3: ("possible", "questionable", "exclude", "may represent"),
    }
    rng = np.random.default_rng(11)
    for certainty, words in hedges.items():
        for _ in range(20):
            (s,) = [x for x in compose_report([f], [certainty], [], [], rng) if x.mentions]
            assert any(w in s.text for w in words), s.text
    plain = [
        next(x for x in compose_report([f], [5], [], [], rng) if x.mentions).text for _ in range(30)
    ]
    assert all(not any(w in t for w in ("possible", "likely", "probable")) for t in plain)
    assert any("left" in t for t in plain)


def test_deterministic():
    a = random_case(7)[-1]
    b = random_case(7)[-1]
    assert a == b


def test_median_length_realistic():
    rng = np.random.default_rng(2024)
    lengths = []
    for n in range(200):
        findings, certainties, devices, absent, _, _ = CASES[n % len(CASES)]
        sentences = compose_report(findings, certainties, devices, absent, rng)
        lengths.append(len(" ".join(s.text for s in sentences)))
    assert 100 <= float(np.median(lengths)) <= 350
    assert max(lengths) < 800


def test_bad_input():
    rng = np.random.default_rng(0)
    f = Finding("effusion", "left", "basal", (Region(10, 10, 5, 5),), 0.8, "small")
    with pytest.raises(ValueError):
        compose_report([f], [], [], [], rng)
    with pytest.raises(ValueError):
        compose_report([f], [6], [], [], rng)
    with pytest.raises(ValueError):
        dictate([PlannedSentence("Bad text: here.", (), (), ())], rng, t_start=1.0)
    with pytest.raises(ValueError):
        dictate([PlannedSentence("decimal 1.5 cm.", (), (), ())], rng, t_start=1.0)
