"""What each synthetic image shows, and what radiologists and the CheXpert labeler say of it.

Prevalence and co-occurrence roughly follow the paper's Table 3 (REFLACX train: Opacity ~50%,
Consolidation ~31%, Atelectasis ~29%, Pleural ~28%, ECS ~20%, Edema ~13%; Lung lesion, AMC,
Pneumothorax and Fracture a few percent each), through clinical scenarios that make findings
co-occur the way they do in practice (heart failure: edema + cardiomegaly + effusions;
pneumonia: consolidation + effusion; post-operative: atelectasis + effusion + devices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gazeloc.labels import CHEXPERT_COLUMNS
from gazeloc.synthetic.types import Device, Finding

# scenario -> (probability, {kind: probability of that kind given the scenario})
SCENARIOS: dict[str, tuple[float, dict[str, float]]] = {
    "normal": (0.24, {}),
    "heart_failure": (
        0.17,
        {
            "edema": 0.7,
            "cardiomegaly": 0.75,
            "effusion": 0.6,
            "atelectasis": 0.3,
            "wide_mediastinum": 0.05,
        },
    ),
    "pneumonia": (
        0.2,
        {"consolidation": 0.95, "effusion": 0.3, "atelectasis": 0.25, "groundglass": 0.15},
    ),
    "postoperative": (
        0.14,
        {
            "atelectasis": 0.8,
            "effusion": 0.55,
            "consolidation": 0.25,
            "cardiomegaly": 0.25,
            "pneumothorax": 0.1,
            "wide_mediastinum": 0.12,
        },
    ),
    "oncology": (
        0.08,
        {
            "mass": 0.45,
            "nodule": 0.55,
            "effusion": 0.35,
            "hilar_enlargement": 0.25,
            "atelectasis": 0.2,
            "wide_mediastinum": 0.15,
        },
    ),
    "trauma": (
        0.06,
        {
            "rib_fracture": 0.75,
            "pneumothorax": 0.4,
            "consolidation": 0.3,
            "effusion": 0.2,
            "wide_mediastinum": 0.15,
        },
    ),
    "chronic": (
        0.11,
        {
            "emphysema": 0.5,
            "interstitial": 0.45,
            "nodule": 0.15,
            "cardiomegaly": 0.2,
            "hiatal_hernia": 0.2,
            "groundglass": 0.2,
            "atelectasis": 0.15,
        },
    ),
}

# Devices by scenario (probability of each device kind).
SCENARIO_DEVICES: dict[str, dict[str, float]] = {
    "normal": {"pacemaker": 0.02},
    "heart_failure": {"pacemaker": 0.3, "central_line": 0.2, "sternal_wires": 0.15},
    "pneumonia": {"endotracheal_tube": 0.15, "nasogastric_tube": 0.12, "central_line": 0.2},
    "postoperative": {
        "sternal_wires": 0.7,
        "endotracheal_tube": 0.35,
        "nasogastric_tube": 0.3,
        "central_line": 0.6,
    },
    "oncology": {"central_line": 0.4},
    "trauma": {"endotracheal_tube": 0.2, "central_line": 0.2},
    "chronic": {"pacemaker": 0.1},
}

BILATERAL_KINDS = frozenset({"edema", "emphysema", "interstitial"})
CENTRAL_KINDS = frozenset({"cardiomegaly", "wide_mediastinum", "hiatal_hernia"})


@dataclass(frozen=True)
class CasePlan:
    """Which finding kinds (and sides) and devices an image shows."""

    scenario: str
    kinds: tuple[tuple[str, str | None], ...]
    """(kind, side or None to let the anatomy choose)."""
    devices: tuple[str, ...]


def sample_case(rng: np.random.Generator) -> CasePlan:
    """Draw a scenario, then its findings and devices."""
    names = list(SCENARIOS)
    probs = np.array([SCENARIOS[n][0] for n in names])
    scenario = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    kinds: list[tuple[str, str | None]] = []
    for kind, p in SCENARIOS[scenario][1].items():
        if rng.random() < p:
            kinds.append((kind, None))
    if scenario != "normal" and not kinds:
        kind = max(SCENARIOS[scenario][1], key=SCENARIOS[scenario][1].get)
        kinds.append((kind, None))
    # A shared side for effusion + atelectasis (adjacent compressive atelectasis).
    if scenario == "heart_failure":
        kinds = [
            (k, "bilateral" if k == "effusion" and rng.random() < 0.5 else s) for k, s in kinds
        ]
    side_of = {k: s for k, s in kinds}
    if "effusion" in side_of and "atelectasis" in side_of and rng.random() < 0.6:
        side = side_of["effusion"] or ("right" if rng.random() < 0.5 else "left")
        if side == "bilateral":
            side = "right" if rng.random() < 0.5 else "left"
        kinds = [
            (k, side if k in ("effusion", "atelectasis") and s != "bilateral" else s)
            for k, s in kinds
        ]
    devices = tuple(d for d, p in SCENARIO_DEVICES[scenario].items() if rng.random() < p)
    return CasePlan(scenario=scenario, kinds=tuple(kinds), devices=devices)


def reader_certainty(finding: Finding, rng: np.random.Generator) -> int:
    """A radiologist's certainty (0 = missed, 1-5) for a finding of the given severity."""
    severity = finding.severity
    if rng.random() < 0.25 * (1.0 - severity) ** 2:
        return 0
    score = severity + rng.normal(0.0, 0.18)
    if score > 0.6:
        return 5
    if score > 0.4:
        return 4
    if score > 0.22:
        return 3
    return int(rng.choice([1, 2, 3]))


CHEXPERT_FROM_KIND: dict[str, tuple[str, ...]] = {
    "effusion": ("Pleural Effusion",),
    "pneumothorax": ("Pneumothorax",),
    "nodule": ("Lung Lesion",),
    "mass": ("Lung Lesion",),
    "consolidation": ("Consolidation", "Lung Opacity"),
    "atelectasis": ("Atelectasis",),
    "edema": ("Edema",),
    "groundglass": ("Lung Opacity",),
    "interstitial": ("Lung Opacity",),
    "cardiomegaly": ("Cardiomegaly",),
    "wide_mediastinum": ("Enlarged Cardiomediastinum",),
    "rib_fracture": ("Fracture",),
    "hilar_enlargement": (),
    "emphysema": (),
    "hiatal_hernia": (),
}

NEGATABLE: tuple[str, ...] = (
    "Pleural Effusion",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Cardiomegaly",
    "Pneumonia",
    "Lung Opacity",
)


def chexpert_row(
    findings: list[Finding], devices: list[Device], rng: np.random.Generator
) -> dict[str, float | None]:
    """The study's CheXpert labels as the MIMIC-CXR labeler would write them.

    Present findings give 1.0 (or -1.0 when hedged, more often when subtle), with a few
    labeler misses; some absent findings are stated negative (0.0) and the rest are blank;
    ``No Finding`` is 1.0 only when nothing but support devices is positive or uncertain.
    """
    row: dict[str, float | None] = dict.fromkeys(CHEXPERT_COLUMNS)
    for finding in findings:
        for column in CHEXPERT_FROM_KIND[finding.kind]:
            if rng.random() < 0.04:
                continue  # labeler miss
            hedged = rng.random() < 0.08 + 0.25 * (1.0 - finding.severity)
            value = -1.0 if hedged else 1.0
            current = row[column]
            row[column] = value if current is None or current == -1.0 else current
        if finding.kind == "consolidation" and rng.random() < 0.5:
            row["Pneumonia"] = -1.0 if rng.random() < 0.6 else 1.0
        if finding.kind == "cardiomegaly" and rng.random() < 0.2:
            row["Enlarged Cardiomediastinum"] = row["Enlarged Cardiomediastinum"] or -1.0
        if finding.kind in ("atelectasis", "edema") and rng.random() < 0.15:
            row["Lung Opacity"] = row["Lung Opacity"] or 1.0
    if devices:
        row["Support Devices"] = 1.0
    for column in NEGATABLE:
        if row[column] is None and rng.random() < 0.25:
            row[column] = 0.0
    if row["Fracture"] is None and rng.random() < 0.01:
        row["Fracture"] = 1.0  # old fracture reported in the text: label noise
    present = [
        c
        for c in CHEXPERT_COLUMNS
        if c not in ("No Finding", "Support Devices") and row[c] in (1.0, -1.0)
    ]
    row["No Finding"] = None if present else 1.0
    return row
