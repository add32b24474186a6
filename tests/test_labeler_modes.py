"""The two labeler modes (``labeler.mode``): gazeloc's stricter reading and the reference's
semantics of Enlarged cardiac silhouette, Abnormal mediastinal contour and "density"; the
reference's mention spans and the mention times they give, on a hand-built transcript."""

from __future__ import annotations

import pytest

from gazeloc.errors import DataFormatError
from gazeloc.gaze.timing import Dictation
from gazeloc.labeler import label_report, load_rules
from gazeloc.labeler.rules_io import MODES, category_files, default_rules_dir

ECS = "Enlarged cardiac silhouette"
AMC = "Abnormal mediastinal contour"
LNM = "Lung nodule or mass"

# text -> {mode: [(category, exact mention text, status), ...]} (only the three categories)
CASES: list[tuple[str, dict[str, list[tuple[str, str, str]]]]] = [
    # "the heart": the reference's phrase starts at "the"
    (
        "Left ventricular configuration of the heart.",
        {"gazeloc": [], "reference": [(ECS, "the heart", "positive")]},
    ),
    (
        "The heart is normal in size.",
        {"gazeloc": [(ECS, "heart", "negative")], "reference": [(ECS, "The heart", "negative")]},
    ),
    (
        "The heart is enlarged.",
        {"gazeloc": [(ECS, "heart", "positive")], "reference": [(ECS, "The heart", "positive")]},
    ),
    (
        "Stable appearance of the heart.",
        {
            "gazeloc": [(ECS, "heart", "uncertain")],
            "reference": [(ECS, "the heart", "uncertain")],
        },
    ),
    (
        "Pacemaker leads overlie the heart.",  # positional use: no mention in either mode
        {"gazeloc": [], "reference": []},
    ),
    # "heart size"
    (
        "Evaluation of heart size.",
        {"gazeloc": [], "reference": [(ECS, "heart size", "positive")]},
    ),
    (
        "Heart size is normal.",
        {
            "gazeloc": [(ECS, "Heart size", "negative")],
            "reference": [(ECS, "Heart size", "negative")],
        },
    ),
    # "cardiac silhouette"
    (
        "Cardiac silhouette measures 15 cm.",
        {"gazeloc": [], "reference": [(ECS, "Cardiac silhouette", "positive")]},
    ),
    (
        "Normal cardiac silhouette.",
        {
            "gazeloc": [(ECS, "cardiac silhouette", "negative")],
            "reference": [(ECS, "cardiac silhouette", "negative")],
        },
    ),
    (
        "Possible enlargement of the cardiac silhouette.",
        {
            "gazeloc": [(ECS, "cardiac silhouette", "uncertain")],
            "reference": [(ECS, "cardiac silhouette", "uncertain")],
        },
    ),
    # "contour": any contour, in the reference
    (
        "The contour of the diaphragm is irregular.",
        {"gazeloc": [], "reference": [(AMC, "contour", "positive")]},
    ),
    (
        "Contours are normal.",
        {"gazeloc": [], "reference": [(AMC, "Contours", "negative")]},
    ),
    (
        "Mediastinal contours are within normal limits.",
        {
            "gazeloc": [(AMC, "Mediastinal contours", "negative")],
            "reference": [(AMC, "contours", "negative")],
        },
    ),
    (
        "Normal contour of the mediastinum.",
        {
            "gazeloc": [(AMC, "mediastinum", "negative")],
            "reference": [(AMC, "contour", "negative"), (AMC, " mediastinum", "negative")],
        },
    ),
    # " mediastinum": the reference's phrase starts at the space before the word
    (
        "Evaluation of the mediastinum.",
        {"gazeloc": [], "reference": [(AMC, " mediastinum", "positive")]},
    ),
    (
        "The upper mediastinum is prominent.",
        {
            "gazeloc": [(AMC, "mediastinum", "positive")],
            "reference": [(AMC, " mediastinum", "positive")],
        },
    ),
    (
        # first word of its sentence: no space before it, so the reference's phrase misses it
        "Mediastinum is widened.",
        {"gazeloc": [(AMC, "Mediastinum", "positive")], "reference": []},
    ),
    (
        "No widening of the mediastinum.",  # a finding phrase: the same in both modes
        {
            "gazeloc": [(AMC, "widening of the mediastinum", "negative")],
            "reference": [(AMC, "widening of the mediastinum", "negative")],
        },
    ),
    # "density": also a lung nodule or mass in the reference
    (
        "Density in the right lower lobe.",
        {"gazeloc": [], "reference": [(LNM, "Density", "positive")]},
    ),
    (
        "No focal density.",
        {"gazeloc": [], "reference": [(LNM, "density", "negative")]},
    ),
    (
        "Bone density is decreased.",  # not in the lung: no mention in either mode
        {"gazeloc": [], "reference": []},
    ),
]


def _three(text: str, mode: str) -> list[tuple[str, str, str]]:
    return [
        (m.category, text[m.start : m.end], m.status)
        for m in label_report(text, mode)
        if m.category in (ECS, AMC, LNM)
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_phrase_in_both_modes(text, expected, mode):
    assert _three(text, mode) == expected[mode]


def test_density_maps_to_lung_lesion_and_opacity_in_reference_mode():
    text = "Density in the right lower lobe."
    labels = {lab for m in label_report(text, "gazeloc") for lab in m.model_labels}
    assert labels == {"opacity", "atelectasis", "consolidation"}
    labels = {lab for m in label_report(text, "reference") for lab in m.model_labels}
    assert labels == {"opacity", "atelectasis", "consolidation", "lung_lesion"}


def test_other_categories_are_the_same_in_both_modes():
    text = (
        "Small left pleural effusion with adjacent atelectasis. No pneumothorax. "
        "Possible right lower lobe pneumonia, endotracheal tube in place."
    )
    assert label_report(text, "gazeloc") == label_report(text, "reference")


def test_reference_mode_replaces_three_category_files():
    root = default_rules_dir()
    gazeloc = category_files(root, "gazeloc")
    reference = category_files(root, "reference")
    assert [p.name for p in gazeloc] == [p.name for p in reference]
    changed = sorted(p.name for p, q in zip(gazeloc, reference, strict=True) if p != q)
    assert changed == [
        "abnormal_mediastinal_contour.yaml",
        "enlarged_cardiac_silhouette.yaml",
        "lung_nodule_or_mass.yaml",
    ]
    assert load_rules(mode="reference").mode == "reference"
    with pytest.raises(ValueError, match="labeler mode"):
        load_rules(mode="chexpert")


def test_reference_file_must_replace_a_category_file(tmp_path):
    import shutil

    root = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), root)
    (root / "reference" / "categories" / "heart.yaml").write_text("category: Atelectasis\n")
    with pytest.raises(DataFormatError, match="replaces no file"):
        load_rules(root, mode="reference")
    (root / "reference" / "categories" / "heart.yaml").unlink()
    path = root / "reference" / "categories" / "lung_nodule_or_mass.yaml"
    path.write_text(path.read_text() + "abnormal:\n  - _big\n")
    with pytest.raises(DataFormatError, match="leading _"):
        load_rules(root, mode="reference")


# --- spans and times on a hand-built transcript -----------------------------------------------

TEXT = "The heart is enlarged. The upper mediastinum is prominent."
TOKENS = "The heart is enlarged . The upper mediastinum is prominent .".split()
WORDS = [(w, float(i), i + 0.5) for i, w in enumerate(TOKENS)]  # token i starts at i seconds


def _times(mode: str) -> list[float | None]:
    mentions = [m for m in label_report(TEXT, mode) if m.status != "negative"]
    dictation = Dictation.from_words(TEXT, WORDS)
    return [s.last_mention for s in dictation.sentence_times((m.start, m.end) for m in mentions)]


def test_reference_spans_start_where_its_phrases_start():
    starts = {m.category: m.start for m in label_report(TEXT, "reference")}
    assert starts[ECS] == TEXT.index("The heart") == 0
    assert starts[AMC] == TEXT.index(" mediastinum")  # the space after "upper"
    starts = {m.category: m.start for m in label_report(TEXT, "gazeloc")}
    assert starts[ECS] == TEXT.index("heart")
    assert starts[AMC] == TEXT.index("mediastinum")


def test_reference_mention_times_follow_its_rule():
    # gazeloc: the anatomical word ("heart" = token 1, "mediastinum" = token 7)
    assert _times("gazeloc") == [1.0, 7.0]
    # reference: the article ("The" = token 0) and, for a phrase that starts at a space, the
    # word the space follows ("upper" = token 6)
    assert _times("reference") == [0.0, 6.0]
