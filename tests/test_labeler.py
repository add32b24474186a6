"""Report labeler: API contract, offsets, reports, aggregation, rules loading, bad input."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeloc.errors import DataFormatError
from gazeloc.labeler import (
    CATEGORIES,
    STATUSES,
    Labeler,
    Mention,
    aggregate,
    label_report,
    load_rules,
    mentions_by_sentence,
    report_labels,
    sentence_index,
    split_sentences,
)
from gazeloc.labeler.phrases import PhraseError, PhraseSet, expand, tokenize
from gazeloc.labeler.rules_io import default_rules_dir
from gazeloc.labels import REFLACX_LABELS_PHASE_23, REFLACX_TO_MODEL

# --- contract ---------------------------------------------------------------------------------


def test_categories_are_the_phase23_labels_without_other():
    assert set(CATEGORIES) == set(REFLACX_LABELS_PHASE_23) - {"Other"}
    assert len(CATEGORIES) == 15


def test_mention_fields_and_model_labels():
    assert [f.name for f in dataclasses.fields(Mention)] == [
        "category",
        "model_labels",
        "start",
        "end",
        "status",
    ]
    text = "Left lower lobe consolidation. Hiatal hernia. Small pericardial effusion."
    found = {m.category: m for m in label_report(text)}
    assert found["Consolidation"].model_labels == ("consolidation", "opacity")
    assert found["Hiatal hernia"].model_labels == ()
    assert found["Enlarged cardiac silhouette"].model_labels == ("enlarged_cardiac_silhouette",)
    for m in found.values():
        assert m.status in STATUSES
        assert m.model_labels == REFLACX_TO_MODEL.get(m.category, ())


def test_shared_phrase_gives_one_mention_per_category():
    text = "Retrocardiac opacity."
    mentions = label_report(text)
    assert sorted(m.category for m in mentions) == ["Atelectasis", "Consolidation"]
    assert {(m.start, m.end) for m in mentions} == {(13, 20)}
    assert all(text[m.start : m.end] == "opacity" for m in mentions)


def test_offsets_are_into_the_raw_text():
    text = "  NO  Pleural   Effusion. Heart   size is NORMAL;  ’small’ PNEUMOTHORAX ."
    mentions = label_report(text)
    got = {(m.category, text[m.start : m.end], m.status) for m in mentions}
    assert ("Pleural abnormality", "Pleural   Effusion", "negative") in got
    assert ("Enlarged cardiac silhouette", "Heart   size", "negative") in got
    assert ("Pneumothorax", "PNEUMOTHORAX", "positive") in got


def test_offsets_survive_characters_that_change_length_when_lowered():
    text = "İİ small left pleural effusion."
    (m,) = label_report(text)
    assert text[m.start : m.end] == "pleural effusion"


def test_mentions_are_in_text_order():
    text = "No pneumothorax. Small effusion. Cardiomegaly. Mild edema."
    starts = [m.start for m in label_report(text)]
    assert starts == sorted(starts)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", ".", ". . .", "\n"])
def test_empty_or_blank_report_has_no_mentions(text):
    assert label_report(text) == []
    assert all(v is None for v in report_labels(label_report(text)).values())


@pytest.mark.parametrize("bad", [None, 3, b"no effusion", ["no effusion"]])
def test_non_string_is_a_type_error(bad):
    with pytest.raises(TypeError, match="must be a str"):
        label_report(bad)
    with pytest.raises(TypeError):
        split_sentences(bad)


def test_long_and_odd_text_does_not_fail():
    text = ("no effusion or " * 500) + "pneumothorax. " + "x" * 10_000 + " ?!;:()/&"
    mentions = label_report(text)
    assert all(m.status == "negative" for m in mentions)
    assert sum(m.category == "Pneumothorax" for m in mentions) == 1


# --- sentences and report level ---------------------------------------------------------------


def test_split_sentences_reflacx_rule():
    text = "no effusion. the tube is 3.5 cm above the carina. small nodule"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == [
        "no effusion.",
        "the tube is 3.5 cm above the carina.",
        "small nodule",
    ]
    assert sentence_index(spans, 0) == 0
    assert sentence_index(spans, 11) == 0
    assert sentence_index(spans, 12) == 1
    assert sentence_index(spans, len(text) - 1) == 2
    with pytest.raises(ValueError):
        sentence_index(spans, len(text) + 5)
    assert split_sentences("") == []


REPORTS = [
    (
        "No pneumothorax. Small left pleural effusion. Heart size is normal.",
        {"Pneumothorax": 0, "Pleural abnormality": 1, "Enlarged cardiac silhouette": 0},
        [["Pneumothorax"], ["Pleural abnormality"], ["Enlarged cardiac silhouette"]],
    ),
    (
        "Small left pleural effusion. No right effusion.",
        {"Pleural abnormality": 1},
        [["Pleural abnormality"], ["Pleural abnormality"]],
    ),
    (
        "Possible left lower lobe pneumonia. No consolidation on the right.",
        {"Consolidation": -1},
        [["Consolidation"], ["Consolidation"]],
    ),
    (
        "Cardiomegaly. Stable cardiomediastinal silhouette.",
        {"Enlarged cardiac silhouette": 1, "Abnormal mediastinal contour": -1},
        [
            ["Enlarged cardiac silhouette"],
            ["Abnormal mediastinal contour", "Enlarged cardiac silhouette"],
        ],
    ),
    (
        "endotracheal tube in standard position. no focal consolidation, pleural effusion or "
        "pneumothorax. the heart is mildly enlarged. old healed left rib fractures.",
        {
            "Support devices": 1,
            "Consolidation": 0,
            "Pleural abnormality": 0,
            "Pneumothorax": 0,
            "Enlarged cardiac silhouette": 1,
        },
        [
            ["Support devices"],
            ["Consolidation", "Pleural abnormality", "Pneumothorax"],
            ["Enlarged cardiac silhouette"],
            [],
        ],
    ),
    (
        "cannot exclude small left effusion. left basilar opacity likely atelectasis. "
        "no pulmonary edema. hiatal hernia.",
        {
            "Pleural abnormality": -1,
            "Atelectasis": 1,
            "Consolidation": 1,
            "Pulmonary edema": 0,
            "Hiatal hernia": 1,
        },
        [
            ["Pleural abnormality"],
            ["Atelectasis", "Atelectasis", "Consolidation"],
            ["Pulmonary edema"],
            ["Hiatal hernia"],
        ],
    ),
]


@pytest.mark.parametrize(("text", "labels", "by_sentence"), REPORTS)
def test_report_level(text, labels, by_sentence):
    mentions = label_report(text)
    got = report_labels(mentions)
    assert set(got) == set(CATEGORIES)
    assert {c: v for c, v in got.items() if v is not None} == labels
    spans = split_sentences(text)
    assert len(spans) == len(by_sentence)
    per = [
        sorted(m.category for m in mentions if sentence_index(spans, m.start) == s)
        for s in range(len(spans))
    ]
    assert per == [sorted(x) for x in by_sentence]


def test_mentions_by_sentence_keeps_present_mentions():
    text = "No pneumothorax. Small left effusion, possible atelectasis. Normal heart size."
    per = mentions_by_sentence(text)
    assert [[m.category for m in s] for s in per] == [
        [],
        ["Pleural abnormality", "Atelectasis"],
        [],
    ]
    every = mentions_by_sentence(text, present_only=False)
    assert [len(s) for s in every] == [1, 2, 1]


@pytest.mark.parametrize(
    ("statuses", "value"),
    [
        ([], None),
        (["positive"], 1),
        (["uncertain"], -1),
        (["negative"], 0),
        (["negative", "uncertain"], -1),
        (["negative", "positive"], 1),
        (["uncertain", "positive"], 1),
        (["negative", "negative"], 0),
        (["uncertain", "uncertain"], -1),
        (["negative", "uncertain", "positive"], 1),
    ],
)
def test_aggregate_reference_rules(statuses, value):
    assert aggregate(statuses) == value


def test_aggregate_rejects_unknown_status():
    with pytest.raises(ValueError):
        aggregate(["maybe"])


# --- property: sentences are independent -------------------------------------------------------

POOL = [
    "no pleural effusion or pneumothorax.",
    "small left pleural effusion.",
    "heart size is normal.",
    "the heart is mildly enlarged.",
    "possible right lower lobe pneumonia.",
    "cannot exclude a small pneumothorax.",
    "stable cardiomediastinal silhouette.",
    "left basilar opacity, likely atelectasis or scarring.",
    "endotracheal tube in standard position.",
    "no acute fracture.",
    "old healed right rib fractures.",
    "mild pulmonary vascular congestion.",
    "the hila are prominent.",
    "hyperinflated lungs.",
    "the effusion has not resolved.",
    "no new consolidation.",
    "there is no evidence of pneumothorax, but there is a small effusion.",
]
WORDS = (
    "no not without possible likely normal stable unchanged or and , effusion pneumothorax "
    "heart size mediastinum opacity atelectasis consolidation nodule mass edema tube line "
    "fracture resolved removed cannot exclude versus with but which small left right the is "
    "are seen hila emphysema hernia"
).split()
sentence = st.one_of(
    st.sampled_from(POOL),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=14).map(lambda w: " ".join(w) + "."),
)


def _relative(text: str) -> list[list[tuple[str, int, int, str]]]:
    """Mentions per sentence, offsets relative to the sentence start."""
    spans = split_sentences(text)
    out: list[list[tuple[str, int, int, str]]] = [[] for _ in spans]
    for m in label_report(text):
        s = sentence_index(spans, m.start)
        a = spans[s][0]
        out[s].append((m.category, m.start - a, m.end - a, m.status))
    return [sorted(x) for x in out]


@settings(max_examples=300, deadline=None)
@given(st.lists(sentence, min_size=1, max_size=6), sentence, st.integers(min_value=0))
def test_adding_an_unrelated_sentence_changes_no_other_sentence(sentences, extra, where):
    where %= len(sentences) + 1
    before = _relative(" ".join(sentences))
    after = _relative(" ".join([*sentences[:where], extra, *sentences[where:]]))
    assert after[:where] + after[where + 1 :] == before


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_valid_mentions(text):
    for m in label_report(text):
        assert 0 <= m.start < m.end <= len(text)
        assert m.category in CATEGORIES
        assert m.status in STATUSES


# --- phrase language and rule files -----------------------------------------------------------


def test_phrase_language():
    assert expand("pleural effusion") == [(("w", "pleural"), ("w", "effusion"))]
    assert expand("atelecta*") == [(("p", "atelecta"),)]
    assert len(expand("(a|b c) d?")) == 4
    assert expand("ground-glass") == [(("w", "ground"), ("w", "glass"))]
    assert expand("old ... fractur*") == [(("w", "old"), ("g", 3), ("p", "fractur"))]
    for bad in ["", "( a", "... x", "x ...", "(a|)", "x (a (b))", "@@"]:
        with pytest.raises(PhraseError):
            expand(bad)


def test_phrase_matching_gap_and_punctuation():
    phrases = PhraseSet([("old ... fractur*", "old"), ("rib fracture", "rib")])
    toks = tokenize("old healed left rib fracture. old, rib fracture")
    got = sorted((m.start, m.end, m.payload) for m in phrases.find_all(toks))
    # the gap matches up to three words and never crosses punctuation
    assert got == [(0, 5, "old"), (3, 5, "rib"), (8, 10, "rib")]


def test_every_rule_file_loads_and_every_category_has_mentions():
    rules = load_rules()
    assert rules.categories == CATEGORIES
    assert rules.phrases.size > 500
    assert rules.triggers.size > 200


def _copy_rules(tmp_path):
    target = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), target)
    return target


def test_a_radiologist_can_edit_the_rules(tmp_path):
    rules_dir = _copy_rules(tmp_path)
    path = rules_dir / "categories" / "hiatal_hernia.yaml"
    text = path.read_text().replace("mention:\n", "mention:\n  - upside down stomach\n", 1)
    path.write_text(text)
    labeler = Labeler(load_rules(rules_dir))
    (m,) = labeler.label("Upside down stomach.")
    assert m.category == "Hiatal hernia"
    assert label_report("Upside down stomach.") == []


@pytest.mark.parametrize(
    ("file", "content", "match"),
    [
        ("categories/pneumothorax.yaml", 'category: Pneumothorax\nmention: ["(a"]\n', "bad phrase"),
        ("categories/pneumothorax.yaml", "category: Pneumo\nmention: [x]\n", "not one of"),
        ("categories/pneumothorax.yaml", "category: Pneumothorax\nmentions: [x]\n", "unknown keys"),
        ("categories/pneumothorax.yaml", "category: Pneumothorax\nmention: x\n", "list of phrases"),
        ("negation.yaml", "kind: negation\nfollowing: [no]\nforward: [x]\n", "unknown keys"),
        ("negation.yaml", "kind: pseudo\n", "'kind' must be"),
        ("termination.yaml", "terminators: [a\n", "not valid YAML"),
    ],
)
def test_bad_rule_files_name_the_file(tmp_path, file, content, match):
    rules_dir = _copy_rules(tmp_path)
    (rules_dir / file).write_text(content)
    with pytest.raises(DataFormatError, match=match) as err:
        load_rules(rules_dir)
    assert err.value.path.name == file.split("/")[-1]


def test_missing_rule_file_is_reported(tmp_path):
    rules_dir = _copy_rules(tmp_path)
    (rules_dir / "categories" / "pneumothorax.yaml").unlink()
    with pytest.raises(DataFormatError, match="Pneumothorax"):
        load_rules(rules_dir)
    (rules_dir / "stability.yaml").unlink()
    with pytest.raises(DataFormatError, match="missing"):
        load_rules(rules_dir)
