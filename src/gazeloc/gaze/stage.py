"""The heatmap and ellipse files of one REFLACX phase (docs/outputs.md#heatmaps-and-ellipses).

``results/heatmaps/phase{P}.h5`` (:func:`write_heatmaps`): one root group per non-discarded
reading, named by its reading id, with

* ``et`` — ``(10, S, S)`` float16, label-specific heatmaps in the padded square frame (max
  over the sentences mentioning the label; zeros for a label without a localized mention);
* ``et_labels`` — ``(10,)`` bool, a non-empty ET heatmap exists for the label;
* ``report_labels`` — ``(10,)`` bool, a positive or uncertain mention exists;
* ``full_report`` — ``(S, S)`` float16, the heatmap of the whole dictation (window 0 to the
  end of the last word), for the ablation without label-specific heatmaps;
* attributes ``split`` (the study split: ``train`` / ``val`` / ``test`` by the rule of
  docs/method.md#images-and-splits with the validation-subjects list), ``official_split``,
  ``dicom_id``, ``subject_id``, ``phase``, ``sentences`` (indices of the sentences with present
  mentions) and ``windows`` (their ``(t0, t1)`` in seconds, NaN for an empty window);

and the parameters that made it as file attributes (``window_method``, ``window_end``,
``sigma_degrees``, ``size``, the labels file, counts). ``results/ellipses/phase{P}.h5``
(:func:`write_ellipses`): per reading ``ellipses`` ``(10, S, S)`` bool (certainty ≥ 3),
``ellipse_labels`` and ``ellipse_labels_any`` ``(10,)`` bool, the same reading attributes.

Maps are compressed with Blosc LZ4 and byte shuffle (hdf5plugin; one chunk per map); files
are written to a temporary name and renamed. Readings are processed in ``workers`` processes.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl
from tqdm import tqdm

from gazeloc.errors import DataFormatError
from gazeloc.gaze.ellipses import MIN_CERTAINTY, reading_ellipses
from gazeloc.gaze.labelmaps import Mention, label_maps, present_mentions, sentence_labels
from gazeloc.gaze.render import TRUNCATE, FrameRenderer, keep_freed_memory
from gazeloc.gaze.timing import WINDOW_ENDS, Dictation
from gazeloc.gaze.windows import DEFAULT_METHOD, parse_method
from gazeloc.io.reflacx import ReflacxReading, metadata_path, read_metadata, read_readings
from gazeloc.ioutil import atomic_path, ensure_space
from gazeloc.labels import MODEL_LABELS
from gazeloc.splits import check_val_subjects, read_val_subjects, study_split

log = logging.getLogger(__name__)

FRAME = (
    "square frame: long side resized to S with antialiased bilinear interpolation "
    "(Pillow BILINEAR), zero padding left=(S-w)//2, top=(S-h)//2"
)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class HeatmapSettings:
    """The parameters of the heatmaps file (only these make it stale)."""

    method: str = DEFAULT_METHOD
    window_end: str = "word_start"
    sigma_degrees: float = 1.0
    size: int = 512

    def __post_init__(self) -> None:
        parse_method(self.method)
        if self.window_end not in WINDOW_ENDS:
            raise ValueError(f"window_end must be one of {', '.join(WINDOW_ENDS)}")
        if not self.sigma_degrees > 0:
            raise ValueError("sigma_degrees must be positive")
        if self.size < 1:
            raise ValueError("size must be positive")


def study_splits(reflacx: str | Path, phase: int, val_subjects: str | Path) -> dict[str, str]:
    """Study split of every reading of a phase, checking the list.

    The rule: docs/method.md#images-and-splits.
    """
    metadata = read_metadata(reflacx, phase)
    subjects = read_val_subjects(val_subjects)
    check_val_subjects(metadata, subjects, metadata_path(reflacx, phase))
    frame = metadata.select("id", study_split(val_subjects=subjects).alias("study"))
    return dict(frame.iter_rows())


def parallel_map(
    function: Callable[[T], R], items: Iterable[T], *, workers: int = 1, chunksize: int = 4
) -> Iterator[R]:
    """``map`` in ``workers`` spawned processes (in order); in this process when 1."""
    if workers <= 1:
        yield from map(function, items)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=keep_freed_memory
    ) as pool:
        yield from pool.map(function, items, chunksize=chunksize)


def _blosc() -> dict[str, Any]:
    import hdf5plugin

    return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))


def _reading_attrs(reading: ReflacxReading, split: str) -> dict[str, Any]:
    return {
        "split": split,
        "official_split": reading.split,
        "dicom_id": reading.dicom_id,
        "subject_id": int(reading.subject_id),
        "phase": int(reading.phase),
        "image_width": int(reading.width),
        "image_height": int(reading.height),
    }


@dataclass
class ReadingHeatmaps:
    """What :func:`write_heatmaps` stores for one reading."""

    reading_id: str
    et: dict[int, np.ndarray]
    """The non-zero label maps (float16 ``S × S``) by label index; the others are zero."""
    et_labels: np.ndarray
    report_labels: np.ndarray
    full_report: np.ndarray
    sentences: list[int]
    windows: list[tuple[float, float] | None]
    empty_maps: int

    @property
    def empty_windows(self) -> int:
        return sum(w is None for w in self.windows)


def reading_inputs(
    reading: ReflacxReading, mentions: list[Mention], labels_path: str | Path
) -> tuple[Dictation, list, dict[int, set[int]], pl.DataFrame]:
    """Read one reading's fixations and transcript; sentence times and labels per sentence."""
    fixations = reading.fixations()
    transcript = reading.transcript()
    dictation = Dictation.from_words(
        transcript.text,
        transcript.words,
        source=reading.main_dir / "timestamps_transcription.csv",
    )
    try:
        times, per_sentence = sentence_labels(dictation, mentions)
    except ValueError as exc:
        raise DataFormatError(
            labels_path,
            f"reading {reading.id}: a mention does not fit its transcription.txt ({exc})",
            column="start",
        ) from exc
    return dictation, times, per_sentence, fixations


def reading_renderer(
    reading: ReflacxReading, fixations: pl.DataFrame, settings: HeatmapSettings
) -> FrameRenderer:
    """The renderer of one reading's fixations on the settings' frame and Gaussian σ."""
    return FrameRenderer(
        fixations,
        image_width=reading.width,
        image_height=reading.height,
        size=settings.size,
        sigma_degrees=settings.sigma_degrees,
        name=reading.id,
    )


def compute_reading(
    reading: ReflacxReading,
    mentions: list[Mention],
    settings: HeatmapSettings,
    labels_path: str | Path = "labels",
) -> ReadingHeatmaps:
    """Every heatmap of one reading (label-specific and full report)."""
    dictation, times, per_sentence, fixations = reading_inputs(reading, mentions, labels_path)
    renderer = reading_renderer(reading, fixations, settings)
    maps = label_maps(
        renderer,
        times,
        per_sentence,
        settings.method,
        window_end=settings.window_end,
        name=reading.id,
    )
    full = renderer.render(0.0, max(dictation.last_word_end, 0.0))
    return ReadingHeatmaps(
        reading_id=reading.id,
        et={int(k): maps.et[k].astype(np.float16) for k in np.flatnonzero(maps.et_labels)},
        et_labels=maps.et_labels,
        report_labels=maps.report_labels,
        full_report=full.astype(np.float16),
        sentences=maps.sentences,
        windows=maps.windows,
        empty_maps=maps.empty_maps,
    )


def _heatmap_task(args: tuple[ReflacxReading, list[Mention], HeatmapSettings, str]) -> Any:
    return compute_reading(*args)


def _phase_readings(reflacx: str | Path, phase: int) -> list[ReflacxReading]:
    readings = read_readings(reflacx, [phase])
    kept = [r for r in readings if not r.discarded]
    if len(kept) < len(readings):
        log.info("phase %d: %d discarded readings left out", phase, len(readings) - len(kept))
    return kept


def write_heatmaps(
    reflacx: str | Path,
    phase: int,
    labels_path: str | Path,
    val_subjects: str | Path,
    out: str | Path,
    settings: HeatmapSettings,
    *,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, int]:
    """Write ``results/heatmaps/phase{P}.h5`` (module docstring); returns counts."""
    from gazeloc.h5 import open_h5

    keep_freed_memory()
    readings = _phase_readings(reflacx, phase)
    splits = study_splits(reflacx, phase, val_subjects)
    labels = pl.read_parquet(labels_path)
    mentions = present_mentions(labels, labels_path)
    known = {r.id for r in readings}
    stray = sorted(set(mentions) - known)
    if stray:
        log.warning(
            "%s: %d reading ids not among phase %d's readings (e.g. %s); ignored",
            labels_path,
            len(stray),
            phase,
            stray[0],
        )
    tasks = [(r, mentions.get(r.id, []), settings, str(labels_path)) for r in readings]
    by_id = {r.id: r for r in readings}
    counts = {
        "readings": 0,
        "sentences_with_mentions": 0,
        "empty_windows": 0,
        "empty_heatmaps": 0,
        "positive_labels": 0,
        "localized_labels": 0,
    }
    compression = _blosc()
    size = settings.size
    record_bytes = (2 * len(MODEL_LABELS) + 1) * size * size * 2  # uncompressed, float16
    with atomic_path(out) as tmp:
        with open_h5(tmp, "w", libver=("v110", "v110")) as f:
            results = parallel_map(_heatmap_task, tasks, workers=workers)
            for res in tqdm(
                results, total=len(tasks), desc=f"heatmaps phase {phase}", disable=not progress
            ):
                reading = by_id[res.reading_id]
                ensure_space(out, record_bytes)
                g = f.create_group(res.reading_id)
                et = g.create_dataset(
                    "et",
                    shape=(len(MODEL_LABELS), size, size),
                    dtype=np.float16,
                    chunks=(1, size, size),
                    fillvalue=0,
                    **compression,
                )
                for k, values in res.et.items():  # zero maps stay unwritten fill chunks
                    et[k] = values
                g.create_dataset("et_labels", data=res.et_labels)
                g.create_dataset("report_labels", data=res.report_labels)
                g.create_dataset(
                    "full_report", data=res.full_report, chunks=(size, size), **compression
                )
                g.attrs.update(_reading_attrs(reading, splits[reading.id]))
                g.attrs["sentences"] = np.asarray(res.sentences, dtype=np.int64)
                g.attrs["windows"] = np.array(
                    [w if w is not None else (np.nan, np.nan) for w in res.windows],
                    dtype=np.float64,
                ).reshape(-1, 2)
                counts["readings"] += 1
                counts["sentences_with_mentions"] += len(res.sentences)
                counts["empty_windows"] += res.empty_windows
                counts["empty_heatmaps"] += res.empty_maps
                counts["positive_labels"] += int(res.report_labels.sum())
                counts["localized_labels"] += int(res.et_labels.sum())
            f.attrs.update(
                {
                    "kind": "heatmaps",
                    "phase": phase,
                    "window_method": parse_method(settings.method).name,
                    "window_end": settings.window_end,
                    "sigma_degrees": settings.sigma_degrees,
                    "size": size,
                    "labels_file": Path(labels_path).name,
                    "model_labels": json.dumps(list(MODEL_LABELS)),
                    "frame": FRAME,
                    "gaussian": (
                        "normalised 2-D density x in-window duration, sigma = sigma_degrees x "
                        f"angular resolution (x and y), truncated at {TRUNCATE} sigma, clipped "
                        "to the displayed rectangle; max-normalised at original resolution"
                    ),
                    "dtype": "float16",
                    "compression": "Blosc LZ4 level 5, byte shuffle (hdf5plugin)",
                    "settings": json.dumps(asdict(settings), sort_keys=True),
                    **{f"n_{k}": v for k, v in counts.items()},
                }
            )
    positives = counts["positive_labels"]
    log.info(
        "phase %d: %d readings, %d sentences with mentions, %d empty windows, %d windows "
        "without fixations; %d of %d positive labels localized",
        phase,
        counts["readings"],
        counts["sentences_with_mentions"],
        counts["empty_windows"],
        counts["empty_heatmaps"],
        counts["localized_labels"],
        positives,
    )
    return counts


def _ellipse_task(args: tuple[ReflacxReading, int]) -> tuple[str, np.ndarray, np.ndarray, Any]:
    reading, size = args
    masks, labels, labels_any = reading_ellipses(
        reading.ellipses(), reading.width, reading.height, size
    )
    return reading.id, masks, labels, labels_any


def write_ellipses(
    reflacx: str | Path,
    phase: int,
    val_subjects: str | Path,
    out: str | Path,
    *,
    size: int = 512,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, int]:
    """Write ``results/ellipses/phase{P}.h5`` (module docstring); returns counts."""
    from gazeloc.h5 import open_h5

    readings = _phase_readings(reflacx, phase)
    splits = study_splits(reflacx, phase, val_subjects)
    by_id = {r.id: r for r in readings}
    counts = {"readings": 0, "ellipse_labels": 0, "ellipse_labels_any": 0, "vanishing": 0}
    compression = _blosc()
    with atomic_path(out) as tmp:
        with open_h5(tmp, "w", libver=("v110", "v110")) as f:
            results = parallel_map(_ellipse_task, [(r, size) for r in readings], workers=workers)
            for rid, masks, labels, labels_any in tqdm(
                results, total=len(readings), desc=f"ellipses phase {phase}", disable=not progress
            ):
                ensure_space(out, masks.nbytes)
                g = f.create_group(rid)
                g.create_dataset("ellipses", data=masks, chunks=(1, size, size), **compression)
                g.create_dataset("ellipse_labels", data=labels)
                g.create_dataset("ellipse_labels_any", data=labels_any)
                g.attrs.update(_reading_attrs(by_id[rid], splits[rid]))
                counts["readings"] += 1
                counts["ellipse_labels"] += int(labels.sum())
                counts["ellipse_labels_any"] += int(labels_any.sum())
                counts["vanishing"] += int((labels & ~masks.reshape(10, -1).any(axis=1)).sum())
            f.attrs.update(
                {
                    "kind": "ellipses",
                    "phase": phase,
                    "size": size,
                    "min_certainty": MIN_CERTAINTY,
                    "model_labels": json.dumps(list(MODEL_LABELS)),
                    "frame": FRAME,
                    "fill": "((u-cx)/a)^2 + ((v-cy)/b)^2 < 1 at integer pixel indices, "
                    "clipped to the image; framed like an image, > 0.5, then OR-ed per label",
                    "compression": "Blosc LZ4 level 5, byte shuffle (hdf5plugin)",
                    **{f"n_{k}": v for k, v in counts.items()},
                }
            )
    log.info(
        "phase %d: %d readings, %d label ellipses (certainty >= %d; %d vanish at S = %d), "
        "%d of any certainty",
        phase,
        counts["readings"],
        counts["ellipse_labels"],
        MIN_CERTAINTY,
        counts["vanishing"],
        size,
        counts["ellipse_labels_any"],
    )
    return counts
