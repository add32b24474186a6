"""Figure 1 of the paper for chosen readings (``results/figures/figure1.png``).

One row per reading: (A) the chest x-ray in the square frame with the heatmap of the whole
dictation; (B) the same image with the heatmap of one sentence's fixation window for one label
it mentions, the outline of that label's ellipses and a colour bar; (C) a timeline of the
reading: fixations (bars at their image x position, upper track), the report's sentences on
their own track below, the chosen sentence with its mentions highlighted, and the fixation
window of that sentence shaded.

Choice of the example (:func:`overlap_score`): among the non-discarded readings of the phase
whose ellipses (certainty ≥ 3) give a label a non-empty mask, every (reading, sentence,
label) where the sentence has a present mention of that label and a non-empty fixation window
is scored by the share of its heatmap's mass that falls inside the label's ellipses,
``sum(H · E) / sum(H)`` (1: all the heat lies in the ellipses). The highest score is drawn
(ties: the smallest reading id, sentence, label). Scoring renders at
:data:`SCORE_SIZE` pixels to stay cheap. With ``figure1_readings`` set, each named reading
gets its own best (sentence, label) the same way; a reading without a scored candidate falls
back to its first localized sentence and most specific label, without an ellipse outline.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from gazeloc.errors import DataFormatError
from gazeloc.gaze.labelmaps import Mention, label_maps, present_mentions
from gazeloc.gaze.stage import HeatmapSettings, reading_inputs, reading_renderer
from gazeloc.gaze.timing import Dictation
from gazeloc.gaze.windows import parse_method
from gazeloc.images.frame import load_frame
from gazeloc.io.reflacx import ReflacxReading, read_readings
from gazeloc.ioutil import atomic_path
from gazeloc.labels import DISPLAY_NAMES, MODEL_LABELS

log = logging.getLogger(__name__)

SCORE_SIZE = 64
"""Frame side (pixels) at which Figure 1 candidates are scored."""


@dataclass
class Panel:
    """What one row of the figure shows."""

    reading: ReflacxReading
    image: np.ndarray
    full: np.ndarray
    label: int
    label_map: np.ndarray
    dictation: Dictation
    sentence: int
    window: tuple[float, float]
    windows: list[tuple[int, tuple[float, float]]]
    """Every (sentence, window) whose heatmap enters the label's map."""
    mentions: list[Mention]
    fixations: pl.DataFrame
    ellipse: np.ndarray | None = None
    """S × S bool mask of the label's ellipses (``None``: none drawn)."""
    score: float | None = None
    """:func:`overlap_score` of the drawn sentence and label (``None``: not scored)."""


def overlap_score(heat: np.ndarray, mask: np.ndarray) -> float:
    """Share of a heatmap's mass inside a mask: ``sum(heat · mask) / sum(heat)`` (0 for an
    all-zero heatmap)."""
    total = float(np.sum(heat, dtype=np.float64))
    if total <= 0:
        return 0.0
    return float(np.sum(heat[mask], dtype=np.float64)) / total


def score_reading(
    reading: ReflacxReading,
    mentions: list[Mention],
    settings: HeatmapSettings,
    labels_path: str | Path = "labels",
) -> list[tuple[float, int, int]]:
    """``(score, sentence, label)`` of every candidate of one reading (module docstring)."""
    from gazeloc.gaze.ellipses import reading_ellipses
    from gazeloc.gaze.windows import window

    if reading.discarded or not mentions:
        return []
    small = HeatmapSettings(
        method=settings.method,
        window_end=settings.window_end,
        sigma_degrees=settings.sigma_degrees,
        size=min(SCORE_SIZE, settings.size),
    )
    masks, labels, _ = reading_ellipses(
        reading.ellipses(), reading.width, reading.height, small.size
    )
    usable = {k for k in np.flatnonzero(labels) if masks[k].any()}
    if not usable:
        return []
    _, times, per_sentence, fixations = reading_inputs(reading, mentions, labels_path)
    renderer = reading_renderer(reading, fixations, small)
    method = parse_method(settings.method)
    out = []
    for s in sorted(per_sentence):
        ks = sorted(usable & per_sentence[s])
        if not ks:
            continue
        win = window(method, times, s, window_end=settings.window_end)
        if win is None:
            continue
        heat = renderer.render(*win)
        out.extend((overlap_score(heat, masks[k]), s, int(k)) for k in ks)
    return out


def best_candidate(
    readings: Sequence[ReflacxReading],
    mentions: dict[str, list[Mention]],
    settings: HeatmapSettings,
    labels_paths: dict[int, str | Path] | None = None,
) -> tuple[str, int, int, float] | None:
    """The highest-scoring ``(reading id, sentence, label, score)`` of ``readings`` (ties:
    smallest reading id, sentence, label); ``None`` when no reading has a candidate."""
    best = None
    for r in sorted(readings, key=lambda r: r.id):
        path = (labels_paths or {}).get(r.phase, "labels")
        for score, s, k in score_reading(r, mentions.get(r.id, []), settings, path):
            if best is None or score > best[3]:
                best = (r.id, s, k, score)
    return best


def choose_readings(
    readings: Sequence[ReflacxReading], mentions: dict[str, list[Mention]], n: int = 1
) -> list[str]:
    """Readings with the most sentences holding a present mention (ties: smallest id)."""
    scored = []
    for r in readings:
        if r.discarded or r.id not in mentions:
            continue
        transcript = r.transcript()
        d = Dictation.from_words(transcript.text, transcript.words)
        sentences = {d.sentence_at(m.start) for m in mentions[r.id]}
        scored.append((-len(sentences), r.id))
    return [rid for _, rid in sorted(scored)[:n]]


def build_panel(
    reading: ReflacxReading,
    mentions: list[Mention],
    mimic: str | Path,
    settings: HeatmapSettings,
    labels_path: str | Path = "labels",
    choice: tuple[int, int, float] | None = None,
) -> Panel:
    """One row of the figure; ``choice`` ``(sentence, label, score)`` draws that sentence's
    map for that label with the label's ellipses (default: the first localized sentence and
    its most specific label, no ellipse)."""
    from gazeloc.gaze.ellipses import reading_ellipses

    dictation, times, per_sentence, fixations = reading_inputs(reading, mentions, labels_path)
    renderer = reading_renderer(reading, fixations, settings)
    maps = label_maps(
        renderer, times, per_sentence, settings.method, window_end=settings.window_end
    )
    localized = [(s, w) for s, w in zip(maps.sentences, maps.windows, strict=True) if w is not None]
    if not localized:
        raise DataFormatError(reading.main_dir, f"reading {reading.id} has no localized mention")
    ellipse = score = None
    if choice is not None:
        sentence, label, score = choice
        win = dict(localized).get(sentence)
        if win is None:
            raise DataFormatError(
                reading.main_dir, f"reading {reading.id}: sentence {sentence} is not localized"
            )
        label_map = renderer.render(*win)
        masks, _, _ = reading_ellipses(
            reading.ellipses(), reading.width, reading.height, settings.size
        )
        ellipse = masks[label]
        windows = [(sentence, win)]
    else:
        # the first localized sentence; its most specific label (fewest sentences mention it)
        sentence, win = localized[0]
        labels = sorted(per_sentence[sentence], key=lambda k: (k == 1, k))  # opacity last
        label = next((k for k in labels if maps.et[k].any()), labels[0])
        label_map = maps.et[label]
        windows = [(s, w) for s, w in localized if label in per_sentence[s]]
    image = load_frame(
        reading.jpg_path(mimic), settings.size, expect_size=(reading.width, reading.height)
    )
    full = renderer.render(0.0, dictation.last_word_end)
    return Panel(
        reading=reading,
        image=image,
        full=full,
        label=label,
        label_map=label_map,
        dictation=dictation,
        sentence=sentence,
        window=win,
        windows=windows,
        mentions=[m for m in mentions if dictation.sentence_at(m.start) == sentence],
        fixations=fixations,
        ellipse=ellipse,
        score=score,
    )


def _overlay(ax, image: np.ndarray, heat: np.ndarray, title: str):
    """Image with the heatmap in colour (transparent where low); returns a mappable for a
    colour bar of the heatmap's 0-1 scale."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    rgba = colormaps["jet"](np.clip(heat, 0, 1))
    rgba[..., 3] = np.clip(heat, 0, 1) * 0.7  # transparent where the heatmap is low
    ax.imshow(rgba)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return ScalarMappable(norm=Normalize(0, 1), cmap="jet")


SENTENCE_TRACK = -0.3
"""y of the sentence track in the timeline (fixations use 0-1)."""


def draw(panels: Sequence[Panel], out: str | Path, method: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    fig = plt.figure(figsize=(13, 4.4 * n), dpi=110, layout="constrained")
    fig.get_layout_engine().set(wspace=0.06)
    grid = fig.add_gridspec(n, 3, width_ratios=[1, 1, 1.6])
    for i, p in enumerate(panels):
        name = DISPLAY_NAMES[MODEL_LABELS[p.label]]
        ax_a = fig.add_subplot(grid[i, 0])
        _overlay(ax_a, p.image, p.full, f"(A) {p.reading.id}: whole dictation")
        ax_b = fig.add_subplot(grid[i, 1])
        title_b = f"(B) label-specific heatmap: {name}"
        if p.score is not None:
            title_b += f"\nheat inside the ellipses: {100 * p.score:.0f}%"
        mappable = _overlay(ax_b, p.image, p.label_map, title_b)
        if p.ellipse is not None and p.ellipse.any():
            ax_b.contour(p.ellipse, levels=[0.5], colors="white", linewidths=1.2)
        bar = fig.colorbar(mappable, ax=[ax_a, ax_b], fraction=0.03, pad=0.02, shrink=0.8)
        bar.set_label("heatmap (max-normalised)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        ax = fig.add_subplot(grid[i, 2])
        d = p.dictation
        spans = d.sentence_spans()
        start = p.fixations["timestamp_start_fixation"].to_numpy()
        end = p.fixations["timestamp_end_fixation"].to_numpy()
        x = p.fixations["x_position"].to_numpy() / max(p.reading.width, 1)
        ax.hlines(x, start, end, color="0.35", lw=2)
        t0, t1 = p.window
        for j, (_, (w0, w1)) in enumerate(p.windows):
            ax.axvspan(
                w0,
                w1,
                color="tab:orange",
                alpha=0.25,
                lw=0,
                label=(
                    "fixation window of the sentence"
                    if len(p.windows) == 1
                    else "fixation windows of the label"
                )
                if j == 0
                else None,
            )
        label_sentences = {s for s, _ in p.windows}
        for s in range(len(spans)):
            idx = np.flatnonzero(d.sentence == s)
            s0, s1 = float(d.starts[idx[0]]), float(d.ends[idx[-1]])
            chosen = s in label_sentences
            ax.plot(
                [s0, s1],
                [SENTENCE_TRACK, SENTENCE_TRACK],
                lw=7 if chosen else 4,
                color="tab:blue" if chosen else "0.6",
                solid_capstyle="butt",
            )
        for m in p.mentions:
            tm = float(d.starts[d.mention_token(m.start)])
            ax.axvline(tm, color="tab:red", lw=1, ls="--")
        # sentences on their own track below the fixations' 0-1 range
        ax.axhline(-0.15, color="0.3", lw=0.6)
        ax.set_ylim(SENTENCE_TRACK - 0.12, 1.08)
        ax.set_yticks([SENTENCE_TRACK, 0, 0.5, 1], ["sentences", "0", "0.5", "1"])
        ax.set_xlabel("time from the start of the recording (s)")
        ax.set_ylabel("fixation x / image width")
        c0, c1 = spans[p.sentence]
        text = d.text[c0:c1]
        for m in sorted(p.mentions, key=lambda m: -m.start):  # mark mentions in the text
            a, b = m.start - c0, m.end - c0
            if 0 <= a < b <= len(text):
                text = text[:a] + "[" + text[a:b] + "]" + text[b:]
        ax.set_title(
            "(C) "
            + "\n".join(textwrap.wrap(f'"{text}"', 70))
            + (f" (+{len(p.windows) - 1} more sentence(s))" if len(p.windows) > 1 else "")
            + f"\nwindow {t0:.2f}–{t1:.2f} s ({method}); red: mentions",
            fontsize=8,
        )
        ax.legend(loc="upper right", fontsize=7)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_figure1(
    reflacx: str | Path,
    mimic: str | Path,
    labels_paths: dict[int, str | Path],
    out: str | Path,
    settings: HeatmapSettings,
    *,
    reading_ids: Sequence[str] = (),
) -> list[str]:
    """Draw Figure 1 for ``reading_ids`` (empty: one chosen reading); returns the ids drawn."""
    phases = sorted(labels_paths)
    readings = {r.id: r for r in read_readings(reflacx, phases)}
    mentions: dict[str, list[Mention]] = {}
    for path in labels_paths.values():
        mentions.update(present_mentions(pl.read_parquet(path), path))
    ids = list(reading_ids)
    choices: dict[str, tuple[int, int, float] | None] = {}
    if not ids:
        phase = 3 if 3 in phases else phases[-1]
        pool = [r for r in readings.values() if r.phase == phase]
        best = best_candidate(pool, mentions, settings, labels_paths)
        if best is not None:
            ids = [best[0]]
            choices[best[0]] = best[1:]
            log.info(
                "figure 1: %s sentence %d, %s: %.3f of the heat inside the ellipses",
                best[0],
                best[1],
                MODEL_LABELS[best[2]],
                best[3],
            )
        else:
            log.info("figure 1: no phase-%d reading has a scored candidate", phase)
            ids = choose_readings(pool, mentions)
        if not ids:
            raise DataFormatError(reflacx, f"no phase-{phase} reading has a present mention")
    missing = [i for i in ids if i not in readings]
    if missing:
        raise DataFormatError(reflacx, f"reading {missing[0]} is not among phases {phases}")
    for i in ids:
        if i not in choices:
            best = best_candidate([readings[i]], mentions, settings, labels_paths)
            choices[i] = best[1:] if best is not None else None
    panels = [
        build_panel(
            readings[i],
            mentions.get(i, []),
            mimic,
            settings,
            labels_paths[readings[i].phase],
            choice=choices[i],
        )
        for i in ids
    ]
    draw(panels, out, parse_method(settings.method).name)
    log.info("figure 1: %s -> %s", ", ".join(ids), out)
    return ids
