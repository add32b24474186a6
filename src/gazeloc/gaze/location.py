"""Location-extraction validation (paper §2.8, §3.2; docs/method.md#location-extraction).

Which time window best turns a radiologist's gaze into the location of what they dictate?
On the **train** readings of REFLACX phases 1 and 2 (all radiologists; study split by
docs/method.md#images-and-splits), for every window method: each reading's label-specific heatmaps
(:mod:`gazeloc.gaze.labelmaps`) are compared with its ellipse masks (certainty ≥ 3,
``results/ellipses/phase{P}.h5``) by IoU of ``heatmap > τ`` at the reference's 26 thresholds,
averaged per label over the readings whose ellipse label is positive (a label with an
ellipse but no localized mention counts as IoU 0). The threshold is chosen **per method and
label** on these same readings (a selection experiment, as in the paper; the reference pooled
methods whose names differ only in their last ``_`` field — fixed here), and a method's
overall IoU is the mean of its per-label IoUs over labels with a positive reading.

* First stage: the reference's 35 methods — delays (default 2.5, 5.0, 7.5 s) × the 8
  delay start/end pairs, and the 11 base methods.
* Second stage: the delays 0.5–5 s with the start and end of the best first-stage delay
  method.

Windows that come out empty are skipped (the sentence gives no heatmap) and counted, as are
windows without fixations; existence agreement counts, per method and label, readings with
a heatmap and an ellipse (tp), a heatmap only (fp), an ellipse only (fn) and neither (tn).

Outputs: ``location_extraction.csv`` (docs/outputs.md: ``method, label, iou, threshold,
n_readings``; ``label`` is a label id or ``all``), ``location_extraction.md`` (readable
tables), ``location_extraction_details.csv`` (per method and label: positives, existence
counts, empty windows) and a plot of IoU against delay. Readings are processed in
``workers`` processes; each evaluates every method on its readings, so a reading's
fixation profiles are computed once per stage and shared by all methods.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm import tqdm

from gazeloc.errors import DataFormatError
from gazeloc.gaze.labelmaps import Mention, present_mentions
from gazeloc.gaze.render import FrameRenderer, keep_freed_memory
from gazeloc.gaze.stage import _phase_readings, parallel_map, reading_inputs, study_splits
from gazeloc.gaze.windows import DEFAULT_METHOD, Method, parse_method, window
from gazeloc.io.reflacx import ReflacxReading
from gazeloc.ioutil import atomic_path, atomic_write_text
from gazeloc.labels import DISPLAY_NAMES, MODEL_LABELS
from gazeloc.metrics import REFERENCE_THRESHOLDS, first_argmax

log = logging.getLogger(__name__)

DELAY_PAIRS: tuple[tuple[str, str], ...] = (
    ("startofsentence", "endofsentence"),
    ("startofsentence", "startofsentence"),
    ("startofsentence", "firstmention"),
    ("startofsentence", "lastmention"),
    ("mention", "lastmention"),
    ("mention", "endofsentence"),
    ("mention", "firstmention"),
    ("endofsentence", "endofsentence"),
)
"""The reference's delay start/end pairs (first stage)."""

BASE_METHODS: tuple[str, ...] = (
    "single_endofsentence",
    "double_endofsentence",
    "double_startofsentence",
    "double_firstmention",
    "double_lastmention",
    "all_endofsentence",
    "all_startofsentence",
    "all_firstmention",
    "all_lastmention",
    "allsentences_endofsentence",
    "andpause_endofsentence",
)
"""The reference's 11 base methods (first stage)."""

FIRST_STAGE_DELAYS = (2.5, 5.0, 7.5)
SECOND_STAGE_DELAYS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
THRESHOLDS = np.asarray(REFERENCE_THRESHOLDS, dtype=np.float64)
N_LABELS = len(MODEL_LABELS)
TABLE_SCHEMA = {
    "method": pl.String,
    "label": pl.String,
    "iou": pl.Float64,
    "threshold": pl.Float64,
    "n_readings": pl.Int64,
}


def first_stage_methods(delays: Sequence[float] = FIRST_STAGE_DELAYS) -> list[str]:
    """The first stage's methods: delays × :data:`DELAY_PAIRS`, then :data:`BASE_METHODS`."""
    names = [Method(start, end, float(d)).name for d in delays for start, end in DELAY_PAIRS]
    return names + list(BASE_METHODS)


def second_stage_methods(best: str, delays: Sequence[float] = SECOND_STAGE_DELAYS) -> list[str]:
    """The second stage's methods: ``delays`` with the start and end of ``best``."""
    m = parse_method(best)
    if m.delay is None:
        raise ValueError(f"{best!r} is not a delay method")
    return [Method(m.start, m.end, float(d)).name for d in delays]


def iou_thresholds(heat: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """IoU of ``heat > τ`` with ``mask`` at every reference threshold τ (26 values).

    Counts pixels per threshold bin once (values ≤ 0 are never above a threshold); 0/0 → 0.
    """
    values = heat.ravel()
    inside = mask.ravel()
    positive = values > 0
    bins = np.searchsorted(THRESHOLDS, values[positive], side="left")  # thresholds below
    hist_all = np.bincount(bins, minlength=THRESHOLDS.size + 1)
    hist_in = np.bincount(bins[inside[positive]], minlength=THRESHOLDS.size + 1)
    # count above τ_k = pixels whose number of thresholds below them exceeds k
    predicted = np.cumsum(hist_all[::-1])[::-1][1:]
    hit = np.cumsum(hist_in[::-1])[::-1][1:]
    n_true = int(inside.sum())
    union = predicted + n_true - hit
    return np.divide(hit, union, out=np.zeros(THRESHOLDS.size), where=union > 0)


@dataclass
class MethodResult:
    """Sums over readings for one method."""

    iou_sum: np.ndarray = field(default_factory=lambda: np.zeros((N_LABELS, THRESHOLDS.size)))
    positives: np.ndarray = field(default_factory=lambda: np.zeros(N_LABELS, dtype=np.int64))
    existence: np.ndarray = field(default_factory=lambda: np.zeros((N_LABELS, 4), dtype=np.int64))
    """Per label: tp (heatmap and ellipse), fp (heatmap only), fn (ellipse only), tn."""
    windows: int = 0
    empty_windows: int = 0
    empty_maps: int = 0

    def add(self, other: MethodResult) -> None:
        self.iou_sum += other.iou_sum
        self.positives += other.positives
        self.existence += other.existence
        self.windows += other.windows
        self.empty_windows += other.empty_windows
        self.empty_maps += other.empty_maps


@dataclass(frozen=True)
class EvalSettings:
    size: int
    sigma_degrees: float = 1.0
    window_end: str = "word_start"


@dataclass(frozen=True)
class ReadingTask:
    reading: ReflacxReading
    mentions: list[Mention]
    ellipses: np.ndarray  # (10, S, S) bool
    ellipse_labels: np.ndarray  # (10,) bool
    labels_path: str


def evaluate_reading(
    task: ReadingTask, methods: Sequence[str], settings: EvalSettings
) -> dict[str, MethodResult]:
    """Every method on one reading.

    The same as :func:`~gazeloc.gaze.labelmaps.label_maps` per method (a label's map is the
    maximum of the heatmaps of the sentences mentioning it; empty windows and windows
    without fixations add nothing), but without building every method's ``10 × S × S``
    array: each distinct window is rendered once, and each label's map and its IoUs are
    computed once per distinct set of windows it takes.
    """
    _, times, per_sentence, fixations = reading_inputs(
        task.reading, task.mentions, task.labels_path
    )
    renderer = FrameRenderer(
        fixations,
        image_width=task.reading.width,
        image_height=task.reading.height,
        size=settings.size,
        sigma_degrees=settings.sigma_degrees,
        name=task.reading.id,
    )
    renders: dict[tuple[float, float], np.ndarray | None] = {}  # None: no fixation adds

    def render(win: tuple[float, float]) -> np.ndarray | None:
        if win not in renders:
            with _quiet("gazeloc.gaze.render"):  # counted, not logged one by one
                heat = renderer.render(*win)
            renders[win] = heat if heat.any() else None
        return renders[win]

    iou_cache: dict[tuple[int, tuple[tuple[float, float], ...]], np.ndarray] = {}
    sentences = sorted(per_sentence)
    out: dict[str, MethodResult] = {}
    positive = task.ellipse_labels
    for method in methods:
        m = parse_method(method)
        res = MethodResult()
        with _quiet("gazeloc.gaze.windows"):
            wins = [window(m, times, s, window_end=settings.window_end) for s in sentences]
        res.windows = len(wins)
        res.empty_windows = sum(w is None for w in wins)
        useful = []  # (sentence, window) whose heatmap is not all zero
        for s, w in zip(sentences, wins, strict=True):
            if w is None:
                continue
            if render(w) is None:
                res.empty_maps += 1
            else:
                useful.append((s, w))
        for k in range(N_LABELS):
            key = tuple(dict.fromkeys(w for s, w in useful if k in per_sentence[s]))
            present = bool(key)
            res.existence[k, _EXISTENCE[(present, bool(positive[k]))]] += 1
            if not positive[k]:
                continue
            res.positives[k] += 1
            if not present:
                continue  # IoU 0 at every threshold
            if (k, key) not in iou_cache:
                heat = render(key[0])
                for w in key[1:]:
                    heat = np.maximum(heat, render(w))
                iou_cache[(k, key)] = iou_thresholds(heat, task.ellipses[k])
            res.iou_sum[k] += iou_cache[(k, key)]
        out[method] = res
    return out


_EXISTENCE = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Raise loggers to ERROR: empty windows are counted, not logged one by one."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _evaluate(args: tuple[list[ReadingTask], list[str], EvalSettings]) -> dict[str, MethodResult]:
    tasks, methods, settings = args
    total = {m: MethodResult() for m in methods}
    for task in tasks:
        for method, res in evaluate_reading(task, methods, settings).items():
            total[method].add(res)
    return total


def run_methods(
    tasks: Sequence[ReadingTask],
    methods: Sequence[str],
    settings: EvalSettings,
    *,
    workers: int = 1,
    progress: bool = True,
    desc: str = "methods",
) -> dict[str, MethodResult]:
    """Sum every method's results over the readings (readings split across workers)."""
    chunk = max(1, min(16, math.ceil(len(tasks) / max(1, 4 * workers))))
    batches = [
        (list(tasks[i : i + chunk]), list(methods), settings) for i in range(0, len(tasks), chunk)
    ]
    total = {m: MethodResult() for m in methods}
    results = parallel_map(_evaluate, batches, workers=workers, chunksize=1)
    for part in tqdm(results, total=len(batches), desc=desc, unit="batch", disable=not progress):
        for method, res in part.items():
            total[method].add(res)
    return total


def select(method: str, res: MethodResult) -> list[dict[str, Any]]:
    """Rows of the table for one method: per label (threshold chosen on these readings)
    and ``all`` (mean over labels with a positive reading)."""
    rows = []
    chosen = []
    for k, label in enumerate(MODEL_LABELS):
        n = int(res.positives[k])
        if n == 0:
            rows.append(
                {"method": method, "label": label, "iou": None, "threshold": None, "n_readings": 0}
            )
            continue
        means = res.iou_sum[k] / n
        best = first_argmax(means)
        chosen.append(float(means[best]))
        rows.append(
            {
                "method": method,
                "label": label,
                "iou": float(means[best]),
                "threshold": float(THRESHOLDS[best]),
                "n_readings": n,
            }
        )
    rows.append(
        {
            "method": method,
            "label": "all",
            "iou": float(np.mean(chosen)) if chosen else None,
            "threshold": None,
            "n_readings": int(res.existence[0].sum()),
        }
    )
    return rows


def overall(res: MethodResult) -> float:
    rows = select("", res)
    value = rows[-1]["iou"]
    return float("nan") if value is None else float(value)


def load_tasks(
    reflacx: str | Path,
    phases: Sequence[int],
    labels_paths: Sequence[str | Path],
    ellipses_paths: Sequence[str | Path],
    val_subjects: str | Path,
    size: int,
) -> list[ReadingTask]:
    """The train readings of the phases with their mentions and ellipse masks."""
    import hdf5plugin  # noqa: F401  (Blosc-compressed masks)

    from gazeloc.h5 import open_h5

    tasks = []
    for phase, labels_path, ellipses_path in zip(phases, labels_paths, ellipses_paths, strict=True):
        splits = study_splits(reflacx, phase, val_subjects)
        mentions = present_mentions(pl.read_parquet(labels_path), labels_path)
        with open_h5(ellipses_path, "r") as f:
            if int(f.attrs.get("size", -1)) != size:
                raise DataFormatError(
                    ellipses_path, f"ellipse masks are {f.attrs.get('size')} px, not {size}"
                )
            for reading in _phase_readings(reflacx, phase):
                if splits[reading.id] != "train":
                    continue
                if reading.id not in f:
                    raise DataFormatError(ellipses_path, f"no group for reading {reading.id}")
                g = f[reading.id]
                tasks.append(
                    ReadingTask(
                        reading,
                        mentions.get(reading.id, []),
                        np.asarray(g["ellipses"][()], dtype=bool),
                        np.asarray(g["ellipse_labels"][()], dtype=bool),
                        str(labels_path),
                    )
                )
    return tasks


def _fmt(value: float | None) -> str:
    return (
        "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
    )


def markdown(
    configured: str,
    table: pl.DataFrame,
    results: dict[str, MethodResult],
    stages: dict[str, list[str]],
    best_first: str,
    n_readings: int,
    seconds: float,
    workers: int,
) -> str:
    all_rows = {
        r["method"]: r for r in table.filter(pl.col("label") == "all").iter_rows(named=True)
    }
    labels = [
        k for k in MODEL_LABELS if any(results[m].positives[MODEL_LABELS.index(k)] for m in results)
    ]
    lines = [
        "# Location-extraction validation",
        "",
        f"Train readings of REFLACX phases 1–2: {n_readings}. IoU of the label-specific heatmap "
        "(> τ) with the ellipses (certainty ≥ 3), mean over readings whose ellipse label is "
        "positive; τ chosen per method and label on these readings (26 reference thresholds); "
        "`all` = mean over labels. Cells: IoU (τ).",
        "",
    ]
    default = parse_method(configured).name
    paper = parse_method(DEFAULT_METHOD).name
    if default in results:
        lines.append(
            f"Configured method `{default}`: IoU **{_fmt(all_rows[default]['iou'])}** "
            f"(the paper's `{paper}` on real data: 0.233)."
        )
    best = max(all_rows, key=lambda m: -1 if all_rows[m]["iou"] is None else all_rows[m]["iou"])
    lines += [
        f"Best method: `{best}` (IoU {_fmt(all_rows[best]['iou'])}); best first-stage delay "
        f"method: `{best_first}`.",
        "",
    ]
    header = (
        "| stage | method | all | "
        + " | ".join(DISPLAY_NAMES[k] for k in labels)
        + " | empty windows |"
    )
    rule = "|---|---|---:|" + "---:|" * len(labels) + "---:|"
    per = {(r["method"], r["label"]): r for r in table.iter_rows(named=True)}
    for stage, methods in stages.items():
        lines += [f"## {stage}", "", header, rule]
        for m in methods:
            cells = []
            for k in labels:
                r = per[(m, k)]
                cells.append("–" if r["iou"] is None else f"{r['iou']:.3f} ({r['threshold']:g})")
            res = results[m]
            lines.append(
                f"| {stage.split()[0].lower()} | `{m}` | {_fmt(all_rows[m]['iou'])} | "
                + " | ".join(cells)
                + f" | {res.empty_windows}/{res.windows} |"
            )
        lines.append("")
    lines += [
        "## Existence agreement",
        "",
        "Readings with a label-specific heatmap vs an ellipse "
        "(certainty ≥ 3), summed over labels: tp both, fp heatmap only, fn ellipse only, "
        "tn neither.",
        "",
        "| method | tp | fp | fn | tn |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in dict.fromkeys([default, best, best_first]):
        if m in results:
            tp, fp, fn, tn = results[m].existence.sum(axis=0).tolist()
            lines.append(f"| `{m}` | {tp} | {fp} | {fn} | {tn} |")
    lines += ["", f"Computed in {seconds:.1f} s with {workers} worker(s).", ""]
    return "\n".join(lines)


def plot(results: dict[str, MethodResult], stages: dict[str, list[str]], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for m, res in results.items():
        p = parse_method(m)
        if p.delay is not None:
            series.setdefault((p.start, p.end), []).append((p.delay, overall(res)))
    second = stages.get("Second stage", [])
    second_pair = None
    if second:
        p = parse_method(second[0])
        second_pair = (p.start, p.end)
    for (start, end), points in sorted(series.items()):
        points.sort()
        xs, ys = zip(*points, strict=True)
        bold = (start, end) == second_pair
        ax.plot(
            xs,
            ys,
            marker="o",
            lw=2.2 if bold else 1.0,
            alpha=1.0 if bold else 0.6,
            label=f"{start} → {end}",
        )
    ax.set_xlabel("delay (s)")
    ax.set_ylabel("IoU (mean over labels)")
    ax.set_title("Location extraction: IoU against delay")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_location_extraction(
    reflacx: str | Path,
    phases: Sequence[int],
    labels_paths: Sequence[str | Path],
    ellipses_paths: Sequence[str | Path],
    val_subjects: str | Path,
    csv: str | Path,
    md: str | Path,
    details: str | Path,
    figure: str | Path,
    *,
    size: int,
    sigma_degrees: float = 1.0,
    window_end: str = "word_start",
    first_delays: Sequence[float] = FIRST_STAGE_DELAYS,
    second_delays: Sequence[float] = SECOND_STAGE_DELAYS,
    method: str = DEFAULT_METHOD,
    workers: int = 1,
    progress: bool = True,
) -> pl.DataFrame:
    """Run both stages and write the table, its Markdown, the details and the plot.

    ``method`` (the configured heatmap method) is always evaluated too: when neither stage
    holds it, it gets its own rows (a third stage, "Configured method").
    """
    start_time = time.perf_counter()
    keep_freed_memory()
    tasks = load_tasks(reflacx, phases, labels_paths, ellipses_paths, val_subjects, size)
    if not tasks:
        raise DataFormatError(reflacx, f"no train readings in phases {list(phases)}")
    settings = EvalSettings(size=size, sigma_degrees=sigma_degrees, window_end=window_end)
    first = first_stage_methods(first_delays)
    results = run_methods(
        tasks, first, settings, workers=workers, progress=progress, desc="first stage"
    )
    delay_methods = [m for m in first if parse_method(m).delay is not None]
    best_first = max(delay_methods, key=lambda m: np.nan_to_num(overall(results[m]), nan=-1.0))
    second = second_stage_methods(best_first, second_delays)
    todo = [m for m in second if m not in results]
    if todo:
        results.update(
            run_methods(
                tasks, todo, settings, workers=workers, progress=progress, desc="second stage"
            )
        )
    stages = {"First stage": first, "Second stage": second}
    configured = parse_method(method).name
    if configured not in results:
        results.update(
            run_methods(
                tasks,
                [configured],
                settings,
                workers=workers,
                progress=progress,
                desc="configured method",
            )
        )
        stages["Configured method"] = [configured]
    order = list(dict.fromkeys(first + second + [configured]))
    rows = [row for m in order for row in select(m, results[m])]
    table = pl.DataFrame(rows, schema=TABLE_SCHEMA)
    seconds = time.perf_counter() - start_time
    with atomic_path(csv) as tmp:
        table.write_csv(tmp)
    detail_rows = []
    for m in order:
        res = results[m]
        for k, label in enumerate(MODEL_LABELS):
            tp, fp, fn, tn = res.existence[k].tolist()
            detail_rows.append(
                {
                    "method": m,
                    "label": label,
                    "n_positive": int(res.positives[k]),
                    "tp": tp,
                    "fp": fp,
                    "fn": fn,
                    "tn": tn,
                    "windows": res.windows,
                    "empty_windows": res.empty_windows,
                    "windows_without_fixations": res.empty_maps,
                }
            )
    with atomic_path(details) as tmp:
        pl.DataFrame(detail_rows).write_csv(tmp)
    text = markdown(configured, table, results, stages, best_first, len(tasks), seconds, workers)
    atomic_write_text(md, text)
    plot(results, stages, figure)
    log.info(
        "location extraction: %d readings, %d methods in %.1f s; best first-stage delay method "
        "%s (IoU %.3f); configured %s IoU %.3f",
        len(tasks),
        len(order),
        seconds,
        best_first,
        overall(results[best_first]),
        configured,
        overall(results[configured]),
    )
    return table
