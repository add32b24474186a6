"""Generate a synthetic REFLACX 1.0.0 + MIMIC-CXR-JPG 2.0.0 dataset with ground truth.

Layout written under ``out``::

    reflacx/            main_data/metadata_phase_{1,2,3}.csv, main_data/<id>/..., gaze_data/<id>/
    mimic-cxr-jpg/      files/pXX/p<subject>/s<study>/<dicom_id>.jpg, mimic-cxr-2.0.0-*.csv.gz
    ground_truth/       images.parquet, findings.parquet, readings.parquet, sentences.parquet,
                        fixations.parquet (not part of either dataset's format)
    val_subjects.txt    subjects moved from train to validation
    labeler_dev_reading_ids.txt   phase 1-2 readings set aside for labeler development

Every study is one task with its own random stream (derived from the seed and the study's
index), so the output is byte-identical for a given seed whatever the number of workers.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image
from tqdm import tqdm

from gazeloc.io.mimic import relative_jpg_path
from gazeloc.io.reflacx import metadata_columns
from gazeloc.labels import CHEXPERT_COLUMNS, reflacx_labels
from gazeloc.synthetic.anatomy import place_device, place_finding, sample_anatomy
from gazeloc.synthetic.cases import chexpert_row, reader_certainty, sample_case
from gazeloc.synthetic.gaze import GazeScene, attention_episodes, gaze_samples, simulate_fixations
from gazeloc.synthetic.render import render_frontal, render_lateral
from gazeloc.synthetic.reports import PlannedSentence, compose_report, dictate
from gazeloc.synthetic.types import (
    FINDING_CATEGORY,
    FINDING_CATEGORY_PHASE_1,
    FINDING_KINDS,
    Finding,
)
from gazeloc.synthetic.writers import (
    chest_box_frame,
    ellipses_frame,
    fixations_frame,
    gaze_frame,
    words_frame,
    write_mimic_table,
    write_reflacx_csv,
)

log = logging.getLogger(__name__)

OTHER_TEXT = ("scoliosis", "aortic calcification", "calcified granuloma", "old healed rib fracture")
ROUND_KINDS = frozenset({"nodule", "mass", "hiatal_hernia", "hilar_enlargement", "rib_fracture"})
NO_ACUTE = ("no acute cardiopulmonary process.", "no acute cardiopulmonary abnormality.")


@dataclass(frozen=True)
class SynthSettings:
    """Sizes and seed of a synthetic dataset (the config's ``synthetic`` section)."""

    seed: int = 0
    mimic_studies: int = 2000
    phase1_images: int = 12
    phase2_images: int = 10
    phase3_readings: int = 400
    image_size: int | str = 1000
    gaze_samples: bool = False
    min_severity: float = 0.0
    validate_share: float = 0.04
    test_share: float = 0.18

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> SynthSettings:
        known = {f.name for f in fields(cls)} | {"workers"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown synthetic setting(s): {', '.join(unknown)}")
        kwargs = {k: v for k, v in values.items() if k != "workers"}
        settings = cls(**kwargs)  # type: ignore[arg-type]
        if settings.image_size != "real" and not isinstance(settings.image_size, int):
            raise ValueError("synthetic.image_size must be an integer or 'real'")
        if not 0 <= settings.phase1_images <= 59 or not 0 <= settings.phase2_images <= 50:
            raise ValueError("phase1_images must be 0-59 and phase2_images 0-50")
        if not 0.0 <= settings.min_severity < 1.0:
            raise ValueError("synthetic.min_severity must be in [0, 1)")
        shares = (settings.validate_share, settings.test_share)
        if min(shares) <= 0.0 or sum(shares) >= 1.0:
            raise ValueError(
                "synthetic.validate_share and synthetic.test_share must be > 0 and leave a "
                f"training share (they sum to {sum(shares):g})"
            )
        return settings


# --- planning (main process, cheap) ----------------------------------------------------------


@dataclass
class ImagePlan:
    dicom_id: str
    view: str  # PA, AP, LATERAL, LL
    width: int
    height: int


@dataclass
class StudyPlan:
    index: int
    subject_id: int
    study_id: int
    split: str
    kind: str  # reflacx | pa_lat | pa | ap | two_frontal | lateral_only | unlabeled
    images: list[ImagePlan]
    labeled: bool
    date: int
    time: float
    reflacx_phase: int = 0
    reading_ids: list[str] = field(default_factory=list)
    discarded: list[bool] = field(default_factory=list)
    readers: list[int] = field(default_factory=list)


def _unique_ints(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[int]:
    values: set[int] = set()
    out: list[int] = []
    while len(out) < n:
        for v in rng.integers(lo, hi, size=n - len(out)).tolist():
            if v not in values:
                values.add(v)
                out.append(v)
    return out


def _dicom_ids(rng: np.random.Generator, n: int) -> list[str]:
    ids: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        raw = rng.integers(0, 2**32, size=5, dtype=np.uint64)
        value = "-".join(f"{int(v):08x}" for v in raw)
        if value not in ids:
            ids.add(value)
            out.append(value)
    return out


def _image_size(rng: np.random.Generator, setting: int | str, view: str) -> tuple[int, int]:
    long_side = int(rng.integers(2500, 3057)) if setting == "real" else int(setting)
    if setting != "real":
        long_side = round(long_side * rng.uniform(0.94, 1.0))
    short = round(long_side * rng.uniform(0.8, 0.96))
    portrait = rng.random() < (0.75 if view != "AP" else 0.55)
    return (short, long_side) if portrait else (long_side, short)


def plan_dataset(settings: SynthSettings) -> tuple[list[StudyPlan], list[int], list[str]]:
    """Decide every id, split, study layout and reading (no images yet).

    Returns the studies, the validation-subjects list and the labeler-development reading ids.
    """
    rng = np.random.default_rng(np.random.SeedSequence([settings.seed, 0]))
    n_reflacx = settings.phase1_images + settings.phase2_images + settings.phase3_readings
    n_studies = n_reflacx + settings.mimic_studies
    n_subjects = max(2, round(n_studies / 1.6))
    subjects = _unique_ints(rng, n_subjects, 10_000_000, 20_000_000)
    shares = [settings.validate_share, settings.test_share]
    subject_split = rng.choice(
        ["train", "validate", "test"], size=n_subjects, p=[1.0 - sum(shares), *shares]
    )
    study_ids = _unique_ints(rng, n_studies, 50_000_000, 60_000_000)
    study_subject = rng.integers(0, n_subjects, size=n_studies)

    kinds = ["reflacx"] * n_reflacx
    mimic_kinds = ["pa_lat", "ap", "pa", "two_frontal", "lateral_only", "unlabeled"]
    kinds += rng.choice(
        mimic_kinds, size=settings.mimic_studies, p=[0.45, 0.3, 0.1, 0.05, 0.04, 0.06]
    ).tolist()
    phases = [1] * settings.phase1_images + [2] * settings.phase2_images
    phases += [3] * settings.phase3_readings + [0] * settings.mimic_studies

    views_of = {
        "pa_lat": ["PA", "LATERAL"],
        "ap": ["AP"],
        "pa": ["PA"],
        "two_frontal": ["AP", "AP"],
        "lateral_only": ["LATERAL"],
        "unlabeled": ["PA", "LATERAL"],
    }
    studies: list[StudyPlan] = []
    for index in range(n_studies):
        kind = kinds[index]
        if kind == "reflacx":
            frontal = "PA" if rng.random() < 0.55 else "AP"
            views = [frontal, "LATERAL"] if frontal == "PA" and rng.random() < 0.7 else [frontal]
        else:
            views = list(views_of[kind])
            if kind == "pa_lat" and rng.random() < 0.1:
                views[1] = "LL"
        images = []
        for view in views:
            width, height = _image_size(rng, settings.image_size, view)
            images.append(ImagePlan("", view, width, height))
        subject = int(study_subject[index])
        studies.append(
            StudyPlan(
                index=index,
                subject_id=subjects[subject],
                study_id=study_ids[index],
                split=str(subject_split[subject]),
                kind=kind,
                images=images,
                labeled=kind != "unlabeled",
                date=int(rng.integers(2100, 2200)) * 10000
                + int(rng.integers(1, 13)) * 100
                + int(rng.integers(1, 29)),
                time=round(
                    float(
                        rng.integers(0, 24) * 10000
                        + rng.integers(0, 60) * 100
                        + rng.integers(0, 60)
                        + rng.integers(0, 1000) / 1000
                    ),
                    3,
                ),
                reflacx_phase=phases[index],
            )
        )
    dicoms = _dicom_ids(rng, sum(len(s.images) for s in studies))
    it = iter(dicoms)
    for study in studies:
        for image in study.images:
            image.dicom_id = next(it)

    # REFLACX readings: 5 per image in phases 1-2 (trial numbers 2.. and 1..), 1 in phase 3.
    used: set[str] = set()
    first_trial = {1: 2, 2: 1}
    trial = {1: 0, 2: 0}
    for study in studies:
        phase = study.reflacx_phase
        if phase == 0:
            continue
        n_readers = 5 if phase in (1, 2) else 1
        readers = rng.permutation(5)[:n_readers].tolist()
        if phase in (1, 2):
            prefix = f"P{phase}{first_trial[phase] + trial[phase]:02d}"
            trial[phase] += 1
        else:
            prefix = "P300"
        for reader in readers:
            while True:
                rid = f"{prefix}R{int(rng.integers(0, 1_000_000)):06d}"
                if rid not in used:
                    used.add(rid)
                    break
            study.reading_ids.append(rid)
            study.readers.append(int(reader))
            study.discarded.append(phase in (1, 2) and bool(rng.random() < 0.04))

    # Validation subjects: every REFLACX subject of split `validate` (the invariant), plus
    # about 10% of the train subjects that have REFLACX images, plus a few others.
    reflacx_subjects = {s.subject_id: s.split for s in studies if s.reflacx_phase}
    val = {sid for sid, split in reflacx_subjects.items() if split == "validate"}
    train_reflacx = sorted(sid for sid, split in reflacx_subjects.items() if split == "train")
    k = max(1, round(0.1 * len(train_reflacx))) if train_reflacx else 0
    val |= set(rng.choice(train_reflacx, size=k, replace=False).tolist()) if k else set()
    others = sorted(set(subjects) - set(reflacx_subjects))
    if others:
        val |= set(rng.choice(others, size=max(1, len(others) // 50), replace=False).tolist())
    val_subjects = sorted(int(v) for v in val)

    prelim = [
        (rid, d)
        for s in studies
        if s.reflacx_phase in (1, 2)
        for rid, d in zip(s.reading_ids, s.discarded, strict=True)
    ]
    kept = sorted(rid for rid, d in prelim if not d)
    n_dev = round(0.2 * len(kept))
    dev = sorted(rng.choice(kept, size=n_dev, replace=False).tolist()) if n_dev else []
    return studies, val_subjects, dev


# --- per-study work (worker processes) ------------------------------------------------------


def _save_jpeg(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="L").save(path, format="JPEG", quality=95)


def _ellipse_rows(
    findings: list[Finding], certainties: list[int], phase: int, rng: np.random.Generator
) -> list[dict]:
    rows = []
    for finding, certainty in zip(findings, certainties, strict=True):
        if certainty == 0:
            continue
        label = (
            FINDING_CATEGORY_PHASE_1[finding.kind] if phase == 1 else FINDING_CATEGORY[finding.kind]
        )
        if label is None:
            continue
        for region in finding.regions:
            cx = region.cx + rng.normal(0, 0.08) * region.rx
            cy = region.cy + rng.normal(0, 0.08) * region.ry
            # Regions are envelopes holding the whole finding; radiologists draw round lesions
            # a little generously and extended ones (lobes, effusions, the heart) along their
            # visible extent, i.e. inside the envelope.
            lo, hi = (1.0, 1.35) if finding.kind in ROUND_KINDS else (0.72, 0.95)
            rx = region.rx * rng.uniform(lo, hi)
            ry = region.ry * rng.uniform(lo, hi)
            rows.append(
                {
                    "xmin": round(cx - rx),
                    "ymin": round(cy - ry),
                    "xmax": round(cx + rx),
                    "ymax": round(cy + ry),
                    "certainty": int(certainty),
                    "labels": {label},
                }
            )
    return rows


def _metadata_labels(
    ellipses: list[dict],
    findings: list[Finding],
    certainties: list[int],
    has_devices: bool,
    phase: int,
    rng: np.random.Generator,
) -> dict:
    labels = reflacx_labels(phase)
    values: dict[str, object] = {}
    for name in labels:
        if name in ("Support devices", "Quality issue"):
            values[name] = False
        elif name == "Other":
            values[name] = None
        else:
            values[name] = max((e["certainty"] for e in ellipses if name in e["labels"]), default=0)
    values["Support devices"] = bool(has_devices and rng.random() < 0.85)
    other = []
    if phase == 1:
        for finding, certainty in zip(findings, certainties, strict=True):
            if certainty and FINDING_CATEGORY_PHASE_1[finding.kind] is None:
                other.append(FINDING_CATEGORY[finding.kind].lower())
    if rng.random() < 0.04:
        other.append(str(rng.choice(OTHER_TEXT)))
    values["Other"] = "|".join(sorted(set(other))) or None
    return values


def _chest_box(anatomy, rng: np.random.Generator) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = anatomy.chest_box
    jitter = rng.normal(0, 0.015, size=4) * np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0])
    box = [round(v + j) for v, j in zip((x0, y0, x1, y1), jitter, strict=True)]
    return box[0], box[1], max(box[2], box[0]), max(box[3], box[1])


def _reading(
    study: StudyPlan,
    k: int,
    image: ImagePlan,
    anatomy,
    findings: list[Finding],
    devices,
    root: Path,
    settings: SynthSettings,
    rng: np.random.Generator,
) -> dict:
    """Write one reading's files; return its metadata row and ground truth."""
    phase = study.reflacx_phase
    rid = study.reading_ids[k]
    discarded = study.discarded[k]
    main = root / "reflacx" / "main_data" / rid
    certainties = [reader_certainty(f, rng) for f in findings]
    ellipses = _ellipse_rows(findings, certainties, phase, rng)
    labels = _metadata_labels(ellipses, findings, certainties, bool(devices), phase, rng)
    write_reflacx_csv(
        main / "anomaly_location_ellipses.csv", ellipses_frame(ellipses, reflacx_labels(phase))
    )
    write_reflacx_csv(main / "chest_bounding_box.csv", chest_box_frame(_chest_box(anatomy, rng)))
    if settings.gaze_samples:
        (root / "reflacx" / "gaze_data" / rid).mkdir(parents=True, exist_ok=True)
    row = {
        "id": rid,
        "split": study.split,
        "eye_tracking_data_discarded": discarded,
        "image": "physionet.org/files/mimic-cxr/2.0.0/"
        + relative_jpg_path(study.subject_id, study.study_id, image.dicom_id)[:-4]
        + ".dcm",
        "dicom_id": image.dicom_id,
        "subject_id": f"{study.subject_id:08d}",
        "image_size_x": image.width,
        "image_size_y": image.height,
        **labels,
    }
    truth: dict = {
        "reading": {
            "reading_id": rid,
            "phase": phase,
            "dicom_id": image.dicom_id,
            "reader": study.readers[k],
            "discarded": discarded,
            "certainties": certainties,
        }
    }
    if discarded:
        truth["sentences"] = []
        truth["fixations"] = None
        return {"row": row, "truth": truth}

    seen = [i for i, c in enumerate(certainties) if c > 0]
    seen_findings = [findings[i] for i in seen]
    present = {f.kind for f in findings}
    absent = [kind for kind in FINDING_KINDS if kind not in present]
    sentences = compose_report(seen_findings, [certainties[i] for i in seen], devices, absent, rng)
    if not sentences:
        sentences = [PlannedSentence(str(rng.choice(NO_ACUTE)), (), (), ())]
    dictation = dictate(sentences, rng, t_start=float(rng.uniform(2.0, 10.0)))
    (main / "transcription.txt").write_bytes(dictation.transcription.encode("utf-8"))
    write_reflacx_csv(
        main / "timestamps_transcription.csv",
        words_frame([(w.text, w.start, w.end) for w in dictation.words]),
    )

    targets = [[seen[m.finding] for m in s.mentions] for s in sentences]
    times = [(t.start, t.last_mention) for t in dictation.sentences]
    regions = tuple(f.regions for f in findings)
    scene = GazeScene(
        width=image.width,
        height=image.height,
        lungs=(anatomy.right_lung, anatomy.left_lung),
        heart=anatomy.heart,
        chest_box=anatomy.chest_box,
        findings=regions,
        dictation_start=dictation.words[0].start,
        dictation_end=dictation.words[-1].end,
        attention=attention_episodes(times, targets, regions, rng),
    )
    fix = simulate_fixations(scene, rng)
    write_reflacx_csv(main / "fixations.csv", fixations_frame(fix))
    if settings.gaze_samples:
        write_reflacx_csv(
            root / "reflacx" / "gaze_data" / rid / "gaze.csv", gaze_frame(gaze_samples(fix, rng))
        )
    truth["sentences"] = [
        {
            "reading_id": rid,
            "sentence": i,
            "text": s.text,
            "char_start": t.char_start,
            "char_end": t.char_end,
            "start": t.start,
            "end": t.end,
            "first_mention": t.first_mention,
            "last_mention": t.last_mention,
            "findings": target,
            "statuses": [m.status for m in s.mentions],
            "negated_kinds": list(s.negated_kinds),
        }
        for i, (s, t, target) in enumerate(
            zip(sentences, dictation.sentences, targets, strict=True)
        )
    ]
    truth["fixations"] = {
        "reading_id": rid,
        "start": fix.start.tolist(),
        "end": fix.end.tolist(),
        "phase": fix.phase.tolist(),
        "sentence": fix.sentence.tolist(),
        "target": fix.target.tolist(),
    }
    return {"row": row, "truth": truth}


def run_study(study: StudyPlan, root: Path, settings: SynthSettings) -> dict:
    """Render a study's images and write its readings; return table rows and ground truth."""
    rng = np.random.default_rng(np.random.SeedSequence([settings.seed, 1, study.index]))
    plan = sample_case(rng)
    frontal_findings: list[Finding] = []
    devices: list = []
    out: dict = {"images": [], "readings": [], "findings": []}
    for number, image in enumerate(study.images):
        path = (
            root
            / "mimic-cxr-jpg"
            / relative_jpg_path(study.subject_id, study.study_id, image.dicom_id)
        )
        if image.view in ("LATERAL", "LL"):
            # Lateral views only have to exist (the paper's filter drops them): render them
            # at half size and upscale, which halves the demo's generation time on them.
            small = render_lateral(max(64, image.width // 2), max(64, image.height // 2), rng)
            lateral = Image.fromarray(small).resize((image.width, image.height), Image.BILINEAR)
            _save_jpeg(path, np.asarray(lateral))
            anatomy = None
        else:
            anatomy = sample_anatomy(image.width, image.height, rng, view=image.view)
            findings = [
                place_finding(kind, anatomy, rng, side=side, min_severity=settings.min_severity)
                for kind, side in plan.kinds
            ]
            devs = [place_device(kind, anatomy, rng) for kind in plan.devices]
            _save_jpeg(path, render_frontal(anatomy, findings, devs, rng))
            if number == 0 or not frontal_findings:
                frontal_findings, devices = findings, devs
            for i, f in enumerate(findings):
                out["findings"].append(
                    {
                        "dicom_id": image.dicom_id,
                        "finding": i,
                        "kind": f.kind,
                        "category": f.category,
                        "model_labels": list(f.model_labels),
                        "side": f.side,
                        "zone": f.zone,
                        "severity": f.severity,
                        "size": f.size,
                        "regions": [[r.cx, r.cy, r.rx, r.ry] for r in f.regions],
                    }
                )
            if study.reflacx_phase:
                for k in range(len(study.reading_ids)):
                    out["readings"].append(
                        _reading(study, k, image, anatomy, findings, devs, root, settings, rng)
                    )
        out["images"].append(
            {
                "dicom_id": image.dicom_id,
                "subject_id": study.subject_id,
                "study_id": study.study_id,
                "view": image.view,
                "width": image.width,
                "height": image.height,
                "scenario": plan.scenario,
                "devices": list(plan.devices),
                "reflacx_phase": study.reflacx_phase,
                "chest_box": list(anatomy.chest_box) if anatomy is not None else None,
            }
        )
    out["chexpert"] = chexpert_row(frontal_findings, devices, rng) if study.labeled else None
    return out


def _run_chunk(args: tuple[list[StudyPlan], Path, SynthSettings]) -> list[dict]:
    studies, root, settings = args
    return [run_study(s, root, settings) for s in studies]


# --- tables -----------------------------------------------------------------------------------


_PROCEDURE = {
    "PA": "CHEST (PA AND LAT)",
    "LATERAL": "CHEST (PA AND LAT)",
    "LL": "CHEST (PA AND LAT)",
    "AP": "CHEST (PORTABLE AP)",
}
_VIEW_MEANING = {
    "PA": "postero-anterior",
    "AP": "antero-posterior",
    "LATERAL": "lateral",
    "LL": "left lateral",
}


def _mimic_tables(studies: list[StudyPlan], results: list[dict], root: Path) -> None:
    meta, split, labels = [], [], []
    for study, result in zip(studies, results, strict=True):
        for image in study.images:
            procedure = _PROCEDURE["AP" if study.kind in ("ap", "two_frontal") else image.view]
            if study.kind == "reflacx":
                procedure = _PROCEDURE[study.images[0].view]
            meta.append(
                {
                    "dicom_id": image.dicom_id,
                    "subject_id": study.subject_id,
                    "study_id": study.study_id,
                    "PerformedProcedureStepDescription": procedure,
                    "ViewPosition": image.view,
                    "Rows": image.height,
                    "Columns": image.width,
                    "StudyDate": study.date,
                    "StudyTime": study.time,
                    "ProcedureCodeSequence_CodeMeaning": procedure,
                    "ViewCodeSequence_CodeMeaning": _VIEW_MEANING[image.view],
                    "PatientOrientationCodeSequence_CodeMeaning": (
                        "Erect" if image.view != "AP" else None
                    ),
                }
            )
            split.append(
                {
                    "dicom_id": image.dicom_id,
                    "study_id": study.study_id,
                    "subject_id": study.subject_id,
                    "split": study.split,
                }
            )
        if result["chexpert"] is not None:
            labels.append(
                {"subject_id": study.subject_id, "study_id": study.study_id, **result["chexpert"]}
            )
    label_schema = {
        "subject_id": pl.Int64,
        "study_id": pl.Int64,
        **{c: pl.Float64 for c in CHEXPERT_COLUMNS},
    }
    label_frame = pl.DataFrame(labels, schema=label_schema).sort("subject_id", "study_id")
    out = root / "mimic-cxr-jpg"
    write_mimic_table(out / "mimic-cxr-2.0.0-chexpert.csv.gz", label_frame)
    negbio = label_frame.with_columns(
        pl.when(pl.col(c) == -1.0).then(pl.lit(1.0)).otherwise(pl.col(c)).alias(c)
        for c in ("Pneumonia",)
    )
    write_mimic_table(out / "mimic-cxr-2.0.0-negbio.csv.gz", negbio)
    meta_frame = pl.DataFrame(meta).sort("subject_id", "study_id", "dicom_id")
    write_mimic_table(out / "mimic-cxr-2.0.0-metadata.csv.gz", meta_frame)
    write_mimic_table(
        out / "mimic-cxr-2.0.0-split.csv.gz",
        pl.DataFrame(split).sort("subject_id", "study_id", "dicom_id"),
    )


_DTYPES = {"str": pl.String, "int": pl.Int64, "bool": pl.Boolean}


def _reflacx_tables(results: list[dict], root: Path) -> None:
    rows = [r["row"] for result in results for r in result["readings"]]
    for phase in (1, 2, 3):
        phase_rows = [r for r in rows if r["id"][1] == str(phase)]
        if not phase_rows:
            continue
        schema = {c.name: _DTYPES[c.kind] for c in metadata_columns(phase)}
        frame = pl.DataFrame(phase_rows, schema=schema)
        frame = frame.sort("image" if phase == 3 else "id")
        write_reflacx_csv(root / "reflacx" / "main_data" / f"metadata_phase_{phase}.csv", frame)


def _ground_truth(results: list[dict], root: Path) -> None:
    out = root / "ground_truth"
    out.mkdir(parents=True, exist_ok=True)
    pl.DataFrame([i for r in results for i in r["images"]]).write_parquet(out / "images.parquet")
    findings = [f for r in results for f in r["findings"]]
    pl.DataFrame(
        findings,
        schema={
            "dicom_id": pl.String,
            "finding": pl.Int64,
            "kind": pl.String,
            "category": pl.String,
            "model_labels": pl.List(pl.String),
            "side": pl.String,
            "zone": pl.String,
            "severity": pl.Float64,
            "size": pl.String,
            "regions": pl.List(pl.List(pl.Float64)),
        },
    ).write_parquet(out / "findings.parquet")
    readings = [x["truth"] for r in results for x in r["readings"]]
    pl.DataFrame(
        [t["reading"] for t in readings],
        schema={
            "reading_id": pl.String,
            "phase": pl.Int64,
            "dicom_id": pl.String,
            "reader": pl.Int64,
            "discarded": pl.Boolean,
            "certainties": pl.List(pl.Int64),
        },
    ).write_parquet(out / "readings.parquet")
    pl.DataFrame(
        [s for t in readings for s in t["sentences"]],
        schema={
            "reading_id": pl.String,
            "sentence": pl.Int64,
            "text": pl.String,
            "char_start": pl.Int64,
            "char_end": pl.Int64,
            "start": pl.Float64,
            "end": pl.Float64,
            "first_mention": pl.Float64,
            "last_mention": pl.Float64,
            "findings": pl.List(pl.Int64),
            "statuses": pl.List(pl.String),
            "negated_kinds": pl.List(pl.String),
        },
    ).write_parquet(out / "sentences.parquet")
    fix = [t["fixations"] for t in readings if t["fixations"] is not None]
    pl.DataFrame(
        fix,
        schema={
            "reading_id": pl.String,
            "start": pl.List(pl.Float64),
            "end": pl.List(pl.Float64),
            "phase": pl.List(pl.Int64),
            "sentence": pl.List(pl.Int64),
            "target": pl.List(pl.Int64),
        },
    ).explode("start", "end", "phase", "sentence", "target").write_parquet(
        out / "fixations.parquet"
    )


def generate(
    out: str | Path, settings: SynthSettings, *, workers: int = 1, progress: bool = True
) -> None:
    """Write the synthetic dataset under ``out`` (see the module docstring).

    Files are written into a temporary folder beside the outputs and moved into place only
    when everything succeeded.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    studies, val_subjects, dev_ids = plan_dataset(settings)
    tmp = out / f".synth-tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        chunk = max(1, min(32, len(studies) // max(1, 4 * workers)))
        chunks = [studies[i : i + chunk] for i in range(0, len(studies), chunk)]
        results: list[dict] = []
        bar = tqdm(total=len(studies), desc="synthetic studies", unit="study", disable=not progress)
        if workers > 1:
            # spawn, not fork: forking a process that has started polars' threads can hang
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                for part in pool.map(_run_chunk, [(c, tmp, settings) for c in chunks]):
                    results.extend(part)
                    bar.update(len(part))
        else:
            for c in chunks:
                part = _run_chunk((c, tmp, settings))
                results.extend(part)
                bar.update(len(part))
        bar.close()
        _mimic_tables(studies, results, tmp)
        _reflacx_tables(results, tmp)
        _ground_truth(results, tmp)
        (tmp / "val_subjects.txt").write_text("".join(f"{s}\n" for s in val_subjects))
        (tmp / "labeler_dev_reading_ids.txt").write_text("".join(f"{r}\n" for r in dev_ids))
        (tmp / "ground_truth" / "settings.json").write_text(
            json.dumps(asdict(settings), sort_keys=True, indent=2) + "\n"
        )
        for name in (
            "reflacx",
            "mimic-cxr-jpg",
            "ground_truth",
            "val_subjects.txt",
            "labeler_dev_reading_ids.txt",
        ):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            os.replace(tmp / name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "synthetic dataset: %d studies, %d REFLACX readings under %s",
        len(studies),
        sum(len(s.reading_ids) for s in studies),
        out,
    )
