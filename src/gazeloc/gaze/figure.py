"""Figure 1 of the paper for chosen readings (``results/figures/figure1.png``).

One row per reading: (A) the chest x-ray in the square frame with the heatmap of the whole
dictation; (B) the same image with the label-specific heatmap of one label; (C) a timeline of
the reading: fixations (bars at their image x position), the report's sentences, the chosen
sentence with its mentions highlighted, and the fixation window of that sentence shaded.
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
) -> Panel:
    dictation, times, per_sentence, fixations = reading_inputs(reading, mentions, labels_path)
    renderer = reading_renderer(reading, fixations, settings)
    maps = label_maps(
        renderer, times, per_sentence, settings.method, window_end=settings.window_end
    )
    localized = [(s, w) for s, w in zip(maps.sentences, maps.windows, strict=True) if w is not None]
    if not localized:
        raise DataFormatError(reading.main_dir, f"reading {reading.id} has no localized mention")
    # the first localized sentence; its most specific label (fewest sentences mention it)
    sentence, win = localized[0]
    labels = sorted(per_sentence[sentence], key=lambda k: (k == 1, k))  # opacity last
    label = next((k for k in labels if maps.et[k].any()), labels[0])
    image = load_frame(
        reading.jpg_path(mimic), settings.size, expect_size=(reading.width, reading.height)
    )
    full = renderer.render(0.0, dictation.last_word_end)
    return Panel(
        reading=reading,
        image=image,
        full=full,
        label=label,
        label_map=maps.et[label],
        dictation=dictation,
        sentence=sentence,
        window=win,
        windows=[(s, w) for s, w in localized if label in per_sentence[s]],
        mentions=[m for m in mentions if dictation.sentence_at(m.start) == sentence],
        fixations=fixations,
    )


def _overlay(ax, image: np.ndarray, heat: np.ndarray, title: str) -> None:
    from matplotlib import colormaps

    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    rgba = colormaps["jet"](np.clip(heat, 0, 1))
    rgba[..., 3] = np.clip(heat, 0, 1) * 0.7  # transparent where the heatmap is low
    ax.imshow(rgba)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def draw(panels: Sequence[Panel], out: str | Path, method: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    fig = plt.figure(figsize=(12, 4.2 * n), dpi=110)
    grid = fig.add_gridspec(n, 3, width_ratios=[1, 1, 1.6])
    for i, p in enumerate(panels):
        name = DISPLAY_NAMES[MODEL_LABELS[p.label]]
        _overlay(
            fig.add_subplot(grid[i, 0]), p.image, p.full, f"(A) {p.reading.id}: whole dictation"
        )
        _overlay(
            fig.add_subplot(grid[i, 1]), p.image, p.label_map, f"(B) label-specific heatmap: {name}"
        )
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
                label="fixation window(s) of the label" if j == 0 else None,
            )
        label_sentences = {s for s, _ in p.windows}
        for s in range(len(spans)):
            idx = np.flatnonzero(d.sentence == s)
            s0, s1 = float(d.starts[idx[0]]), float(d.ends[idx[-1]])
            chosen = s in label_sentences
            ax.plot(
                [s0, s1],
                [-0.12, -0.12],
                lw=6 if chosen else 3,
                color="tab:blue" if chosen else "0.7",
                solid_capstyle="butt",
            )
        for m in p.mentions:
            tm = float(d.starts[d.mention_token(m.start)])
            ax.axvline(tm, color="tab:red", lw=1, ls="--")
        ax.set_ylim(-0.25, 1.15)
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
    fig.tight_layout()
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
    if not ids:
        phase = 3 if 3 in phases else phases[-1]
        ids = choose_readings([r for r in readings.values() if r.phase == phase], mentions)
        if not ids:
            raise DataFormatError(reflacx, f"no phase-{phase} reading has a present mention")
    missing = [i for i in ids if i not in readings]
    if missing:
        raise DataFormatError(reflacx, f"reading {missing[0]} is not among phases {phases}")
    panels = [
        build_panel(
            readings[i], mentions.get(i, []), mimic, settings, labels_paths[readings[i].phase]
        )
        for i in ids
    ]
    draw(panels, out, parse_method(settings.method).name)
    log.info("figure 1: %s -> %s", ", ".join(ids), out)
    return ids
