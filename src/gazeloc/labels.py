"""Label vocabularies and the mappings between them.

Three vocabularies meet in gazeloc:

* the 10 **model labels** (canonical ids, in tensor order; docs/method.md#labels);
* the **REFLACX labels** of the metadata and ellipse tables (phase 1 has its own older names);
* the 14 **MIMIC-CXR CheXpert** columns.

Mappings follow the authors' code (docs/method.md#labels), which includes
Nodule/Mass/Fibrosis -> Opacity and MIMIC Lung Lesion -> Opacity.
"""

from __future__ import annotations

MODEL_LABELS: tuple[str, ...] = (
    "edema",
    "opacity",
    "pneumothorax",
    "pleural_abnormality",
    "lung_lesion",
    "atelectasis",
    "consolidation",
    "fracture",
    "enlarged_cardiac_silhouette",
    "abnormal_mediastinal_contour",
)
"""The 10 model labels in tensor order (the reference's order)."""

DISPLAY_NAMES: dict[str, str] = {
    "edema": "Edema",
    "opacity": "Opacity",
    "pneumothorax": "Pneumothorax",
    "pleural_abnormality": "Pleural abnormality",
    "lung_lesion": "Lung lesion",
    "atelectasis": "Atelectasis",
    "consolidation": "Consolidation",
    "fracture": "Fracture",
    "enlarged_cardiac_silhouette": "Enlarged cardiac silhouette",
    "abnormal_mediastinal_contour": "Abnormal mediastinal contour",
}

LABEL_INDEX: dict[str, int] = {label: i for i, label in enumerate(MODEL_LABELS)}

# --- REFLACX -----------------------------------------------------------------------------

REFLACX_LABELS_PHASE_1: tuple[str, ...] = (
    "Airway wall thickening",
    "Atelectasis",
    "Consolidation",
    "Emphysema",
    "Enlarged cardiac silhouette",
    "Fibrosis",
    "Fracture",
    "Groundglass opacity",
    "Mass",
    "Nodule",
    "Other",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary edema",
    "Quality issue",
    "Support devices",
    "Wide mediastinum",
)
"""Phase-1 label columns, in file order (Python-sorted)."""

REFLACX_LABELS_PHASE_23: tuple[str, ...] = (
    "Abnormal mediastinal contour",
    "Acute fracture",
    "Atelectasis",
    "Consolidation",
    "Enlarged cardiac silhouette",
    "Enlarged hilum",
    "Groundglass opacity",
    "Hiatal hernia",
    "High lung volume / emphysema",
    "Interstitial lung disease",
    "Lung nodule or mass",
    "Other",
    "Pleural abnormality",
    "Pneumothorax",
    "Pulmonary edema",
    "Support devices",
)
"""Phase-2 and phase-3 label columns, in file order (Python-sorted)."""

REFLACX_BOOL_LABELS: frozenset[str] = frozenset({"Support devices", "Quality issue"})
"""Metadata label columns written as True/False rather than a certainty."""

REFLACX_TEXT_LABELS: frozenset[str] = frozenset({"Other"})
"""Metadata label columns holding free text."""


def reflacx_labels(phase: int) -> tuple[str, ...]:
    """The label columns of a REFLACX phase (1, 2 or 3), in file order."""
    if phase == 1:
        return REFLACX_LABELS_PHASE_1
    if phase in (2, 3):
        return REFLACX_LABELS_PHASE_23
    raise ValueError(f"REFLACX phase must be 1, 2 or 3, not {phase!r}")


def reflacx_certainty_labels(phase: int) -> tuple[str, ...]:
    """The abnormality (certainty 0-5) columns of a phase, in file order."""
    return tuple(
        name
        for name in reflacx_labels(phase)
        if name not in REFLACX_BOOL_LABELS and name not in REFLACX_TEXT_LABELS
    )


REFLACX_TO_MODEL: dict[str, tuple[str, ...]] = {
    "Pulmonary edema": ("edema", "opacity"),
    "Pneumothorax": ("pneumothorax",),
    "Pleural abnormality": ("pleural_abnormality",),
    "Pleural thickening": ("pleural_abnormality",),
    "Pleural effusion": ("pleural_abnormality",),
    "Lung nodule or mass": ("lung_lesion", "opacity"),
    "Nodule": ("lung_lesion", "opacity"),
    "Mass": ("lung_lesion", "opacity"),
    "Atelectasis": ("atelectasis", "opacity"),
    "Consolidation": ("consolidation", "opacity"),
    "Acute fracture": ("fracture",),
    "Fracture": ("fracture",),
    "Groundglass opacity": ("opacity",),
    "Interstitial lung disease": ("opacity",),
    "Fibrosis": ("opacity",),
    "Enlarged cardiac silhouette": ("enlarged_cardiac_silhouette",),
    "Abnormal mediastinal contour": ("abnormal_mediastinal_contour",),
    "Wide mediastinum": ("abnormal_mediastinal_contour",),
}
"""REFLACX label column -> model labels (docs/method.md#labels). Unlisted columns map to none."""

PHASE1_TO_PHASE23: dict[str, str] = {
    "Emphysema": "High lung volume / emphysema",
    "Fibrosis": "Interstitial lung disease",
    "Fracture": "Acute fracture",
    "Mass": "Lung nodule or mass",
    "Nodule": "Lung nodule or mass",
    "Pleural effusion": "Pleural abnormality",
    "Pleural thickening": "Pleural abnormality",
    "Wide mediastinum": "Abnormal mediastinal contour",
}
"""Phase-1 names that are aliases of a phase-2/3 category (for reading phase-1 gold labels)."""


def model_labels_of(reflacx_label: str) -> tuple[str, ...]:
    """Model labels a REFLACX label column maps to (empty if none)."""
    return REFLACX_TO_MODEL.get(reflacx_label, ())


# --- MIMIC-CXR-JPG (CheXpert columns) ----------------------------------------------------

CHEXPERT_COLUMNS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)
"""The 14 label columns of mimic-cxr-2.0.0-chexpert.csv, in file order."""

CHEXPERT_TO_MODEL: dict[str, tuple[str, ...]] = {
    "Edema": ("edema", "opacity"),
    "Pneumothorax": ("pneumothorax",),
    "Pleural Other": ("pleural_abnormality",),
    "Pleural Effusion": ("pleural_abnormality",),
    "Lung Lesion": ("lung_lesion", "opacity"),
    "Atelectasis": ("atelectasis", "opacity"),
    "Consolidation": ("consolidation", "opacity"),
    "Fracture": ("fracture",),
    "Lung Opacity": ("opacity",),
    "Pneumonia": ("opacity",),
    "Cardiomegaly": ("enlarged_cardiac_silhouette",),
    "Enlarged Cardiomediastinum": ("abnormal_mediastinal_contour",),
}
"""MIMIC CheXpert column -> model labels (docs/method.md#labels). No Finding and Support
Devices map to none."""
