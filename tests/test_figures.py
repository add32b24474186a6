"""Result figures (learning curves, ROC, IoU bars), the report's HTML tables and the report's
workflow wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeloc.errors import DataFormatError
from gazeloc.labels import MODEL_LABELS
from gazeloc.report import workflow as report_cfg
from gazeloc.report.figures import iou_bars, learning_curves, roc_curves, roc_points
from gazeloc.report.html import markdown_html, write_html_tables

ROOT = Path(__file__).resolve().parents[1]


def test_roc_points_hand_case():
    # scores 0.9 (pos), 0.8 (neg), 0.8 (pos), 0.1 (neg): tie at 0.8 moves both rates at once
    fpr, tpr = roc_points(np.array([0.9, 0.8, 0.8, 0.1]), np.array([1, 0, 1, 0]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    # area: 0.5 * 0.75 (tie trapezoid) + 0.5 * 1 = 0.875 = (1 + 0.5 + 1 + 1) / 4
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.875)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40).filter(
        lambda rows: len({y for _, y in rows}) == 2
    )
)
def test_roc_area_is_the_auc(rows):
    from sklearn.metrics import roc_auc_score

    score = np.array([s for s, _ in rows], float)
    target = np.array([y for _, y in rows])
    fpr, tpr = roc_points(score, target)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(target, score))


def _images(rng: np.random.Generator) -> pl.DataFrame:
    rows = []
    for experiment in ("unannotated", "et"):
        for seed in (1, 2):
            for i in range(30):
                for k, label in enumerate(MODEL_LABELS):
                    target = None if i == 0 else int((i + k) % 3 == 0)
                    if label == MODEL_LABELS[-1]:
                        target = 0  # no positive: no curve for that label
                    p = rng.random() * 0.5 + 0.5 * (target or 0)
                    rows.append((experiment, seed, "test", f"d{i}", i, label, p, target))
    return pl.DataFrame(
        rows,
        schema=[
            "experiment",
            "seed",
            "split",
            "dicom_id",
            "subject_id",
            "label",
            "probability",
            "target",
        ],
        orient="row",
    )


def test_roc_and_learning_curves_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    roc_curves(_images(rng), tmp_path / "roc.png", ["unannotated", "et"])
    assert (tmp_path / "roc.png").read_bytes().startswith(b"\x89PNG")
    log = pl.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [1.0, 0.7, 0.6],
            "val_auc": [0.5, 0.6, 0.58],
            "best": [False, True, False],
        }
    )
    learning_curves({"et": {1: log, 2: log}, "ellipse": {1: log}}, tmp_path / "lc.png")
    assert (tmp_path / "lc.png").read_bytes().startswith(b"\x89PNG")


def test_iou_bars_fit_the_axis_and_name_absent_labels(tmp_path, monkeypatch):
    import matplotlib.figure

    seen = {}
    original = matplotlib.figure.Figure.savefig

    def spy(self, *args, **kwargs):
        ax = self.axes[0]
        seen["ylim"] = ax.get_ylim()
        seen["note"] = self._supxlabel.get_text() if self._supxlabel else ""
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    table = pl.DataFrame(
        {
            "experiment": ["et", "et", "ellipse"],
            "label": ["opacity", "edema", "opacity"],
            "mean": [0.10, 0.05, 0.12],
            "ci_low": [0.08, float("nan"), 0.10],
            "ci_high": [0.13, float("nan"), 0.14],
            "n_seeds": [3, 1, 3],
        }
    )
    iou_bars(table, tmp_path / "bars.png", ["ellipse", "et"])
    assert seen["ylim"] == pytest.approx((0, 1.15 * 0.14))
    assert "No positive test reading" in seen["note"] and "Fracture" in seen["note"]
    assert "Opacity" not in seen["note"]


def test_markdown_html_tables_keep_alignment_notes_and_escape():
    text = (
        "# IoU <per> label\n\nNote with `code` and **bold**.\n\n"
        "| Label | IoU |\n|---|---:|\n| A & B | 0.5 |\n| C | – |\n\n- one\n- two\n"
    )
    page = markdown_html(text, title="iou")
    assert "<h1>IoU &lt;per&gt; label</h1>" in page
    assert "<p>Note with <code>code</code> and <b>bold</b>.</p>" in page
    assert '<th style="text-align:left">Label</th><th style="text-align:right">IoU</th>' in page
    assert '<td style="text-align:left">A &amp; B</td><td style="text-align:right">0.5</td>' in page
    assert page.count("<tr>") == 3 and "<ul><li>one</li><li>two</li></ul>" in page


def test_markdown_html_bad_tables_name_the_file_and_line(tmp_path):
    with pytest.raises(DataFormatError, match=r"t\.md: line 1: a table needs a separator row"):
        markdown_html("| a | b |\n| 1 | 2 | 3 |\n", source="t.md")  # no separator row
    bad = tmp_path / "bad.md"
    bad.write_text("text\n\n| a | b |\n|---|---|\n| 1 |\n")
    with pytest.raises(DataFormatError, match=r"bad\.md.*line 5: 1 cells"):
        write_html_tables([bad], tmp_path / "out")
    assert not (tmp_path / "out" / "bad.html").exists()


def test_report_table_sources_follow_the_targets():
    targets = [
        "r/tables/summary.csv",
        "r/tables/summary.md",
        "r/tables/labeler.md",
        "r/synthetic/realism.md",
        "r/tables/selection.csv",
        "r/tables/other.md",
    ]
    assert report_cfg.report_table_sources(targets) == {
        "summary": "r/tables/summary.md",
        "labeler": "r/tables/labeler.md",
        "realism": "r/synthetic/realism.md",
    }


def test_every_report_item_has_a_caption():
    """Each report table and every figure marked for the report has its caption file, and
    the Snakefile sets the global description."""
    import re

    captions = ROOT / "workflow" / "report"
    for name in report_cfg.REPORT_TABLES:
        assert (captions / f"{name}.rst").is_file(), name
    rules = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    marked = re.findall(r'caption=f?"\.\./report/([^"]+)\.rst"', rules)
    for figure in (
        "figure1",
        "figure4",
        "iou_per_label_figure",
        "learning_curves",
        "roc",
        "location_extraction_delay",
        "synthetic_examples",
    ):
        assert figure in marked and (captions / f"{figure}.rst").is_file(), figure
    assert 'report: "workflow/report/workflow.rst"' in (ROOT / "Snakefile").read_text()
