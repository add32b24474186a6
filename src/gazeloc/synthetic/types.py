"""Shared value types of the synthetic generator.

Coordinates are **image pixels** of the generated image (x to the right, y down, origin at the
top-left corner). Sides are the **patient's** sides: on a frontal (PA/AP) radiograph the
patient's right is on the image's left.
"""

from __future__ import annotations

from dataclasses import dataclass

from gazeloc.labels import REFLACX_TO_MODEL

FINDING_CATEGORY: dict[str, str] = {
    "effusion": "Pleural abnormality",
    "pneumothorax": "Pneumothorax",
    "nodule": "Lung nodule or mass",
    "mass": "Lung nodule or mass",
    "consolidation": "Consolidation",
    "atelectasis": "Atelectasis",
    "edema": "Pulmonary edema",
    "groundglass": "Groundglass opacity",
    "interstitial": "Interstitial lung disease",
    "cardiomegaly": "Enlarged cardiac silhouette",
    "wide_mediastinum": "Abnormal mediastinal contour",
    "rib_fracture": "Acute fracture",
    "hilar_enlargement": "Enlarged hilum",
    "emphysema": "High lung volume / emphysema",
    "hiatal_hernia": "Hiatal hernia",
}
"""Finding kind (its appearance) -> REFLACX phase-2/3 label."""

FINDING_CATEGORY_PHASE_1: dict[str, str | None] = {
    "effusion": "Pleural effusion",
    "pneumothorax": "Pneumothorax",
    "nodule": "Nodule",
    "mass": "Mass",
    "consolidation": "Consolidation",
    "atelectasis": "Atelectasis",
    "edema": "Pulmonary edema",
    "groundglass": "Groundglass opacity",
    "interstitial": "Fibrosis",
    "cardiomegaly": "Enlarged cardiac silhouette",
    "wide_mediastinum": "Wide mediastinum",
    "rib_fracture": "Fracture",
    "hilar_enlargement": None,  # no phase-1 column: goes to `Other`
    "emphysema": "Emphysema",
    "hiatal_hernia": None,
}
"""Finding kind -> REFLACX phase-1 label (None: recorded in the free-text `Other` column)."""

FINDING_KINDS: tuple[str, ...] = tuple(FINDING_CATEGORY)

DEVICE_KINDS: tuple[str, ...] = (
    "endotracheal_tube",
    "nasogastric_tube",
    "central_line",
    "pacemaker",
    "sternal_wires",
)


@dataclass(frozen=True)
class Region:
    """An axis-aligned ellipse in image pixels: centre (cx, cy) and semi-axes (rx, ry)."""

    cx: float
    cy: float
    rx: float
    ry: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the ellipse's bounding box."""
        return (self.cx - self.rx, self.cy - self.ry, self.cx + self.rx, self.cy + self.ry)


@dataclass(frozen=True)
class Finding:
    """One abnormality in one image: its appearance kind, where it is, and how visible.

    ``regions`` are the true extents (one ellipse per contiguous area; a bilateral finding has
    two). ``side`` is "right", "left", "bilateral" or "midline" (patient sides); ``zone`` is a
    word for the report ("upper", "middle", "lower", "apical", "basal", "perihilar", "diffuse",
    "cardiac", "mediastinal", "retrocardiac", "rib"). ``severity`` in (0, 1]: low is subtle.
    ``size`` is "small", "moderate" or "large".
    """

    kind: str
    side: str
    zone: str
    regions: tuple[Region, ...]
    severity: float
    size: str

    @property
    def category(self) -> str:
        return FINDING_CATEGORY[self.kind]

    @property
    def model_labels(self) -> tuple[str, ...]:
        return REFLACX_TO_MODEL.get(self.category, ())


@dataclass(frozen=True)
class Device:
    """A support device drawn on the image; ``path`` is a polyline in image pixels."""

    kind: str
    path: tuple[tuple[float, float], ...]
