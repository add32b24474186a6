"""Per-stage output versions, passed to the rules as ``params.version``.

Snakemake reruns a job when its parameters change, but not when code inside the package
changes. Bump a stage's number in the same commit as a code change that changes what the
stage writes (a fixed bug, a new column, other numbers): the next run redoes that stage and
everything downstream of it, and nothing else. Refactors, speed-ups that give identical
outputs, log messages and documentation do not need a bump.

``tests/test_stage_versions.py`` fails when a stage's code changed without a decision; record
one with ``python -m gazeloc.stageguard update`` (:mod:`gazeloc.stageguard`, CONTRIBUTING.md).
"""

from __future__ import annotations

STAGE_VERSIONS: dict[str, int] = {
    "synthetic": 1,  # gazeloc.synthetic: generated REFLACX / MIMIC-CXR-JPG trees
    "check": 3,  # gazeloc.datacheck: input validation summary (images, warnings by kind; 3: one
    # kind for fixations outside the image, whatever its size)
    "inputs": 1,  # gazeloc.inputs: dataset fingerprints
    "images": 1,  # gazeloc.images: image list, index, dataset counts, shards
    "labels": 2,  # gazeloc.labeler (rules in labeler/rules/ too): mentions, report labels
    "heatmaps": 1,  # gazeloc.gaze: heatmaps, ellipse masks, location extraction
    "figure1": 2,  # gazeloc.gaze.figure: Figure 1 (its own key: a redraw reruns nothing else)
    "train": 6,  # gazeloc.model, gazeloc.train, gazeloc.weights: trained models (4: model card,
    # image settings; 5: effective precision and device type, weights sha256, version and
    # commit in model.pt, warmup_seconds in train_log.csv; 6: numeric facts in model.pt and card)
    "evaluate": 3,  # gazeloc.evaluate, gazeloc.metrics: tidy metrics and per-item results
    # (3: no decoder source for a model whose decoder training never reached)
    "tables": 3,  # gazeloc.report: tables, comparisons, inter-rater table, figures, HTML tables,
    # provenance in summary.md
    "predict": 1,  # gazeloc.predict: predictions, heatmaps and overlays of new images
}


def stage_version(stage: str) -> int:
    """The output version of ``stage`` (a key of :data:`STAGE_VERSIONS`)."""
    return STAGE_VERSIONS[stage]
