"""Synthetic eye tracking: fixations (and 1000 Hz samples) of a radiologist dictating a report.

The model follows what REFLACX shows and what the paper relies on:

* **Display** (as REFLACX's): a 3,840×2,160 screen whose image area spans x = 660-3,180;
  unzoomed, the whole image is shown centred and scaled by min(2520/W, 2160/H). Zoom/pan
  episodes change the displayed rectangle, and therefore the angular resolution in image
  pixels per degree (screen pixels per degree ≈ 93 at the viewing distance, a little less
  towards the screen's edges).
* **Free search** (several seconds before dictation): fixations over the lungs, heart and
  mediastinum, now and then on a finding.
* **Dictation**: for each sentence that reports findings, gaze visits their regions from
  about 1-3 s before the sentence starts until around its last mention (a per-reading lag),
  with distractor fixations, occasional look-ahead to the next finding, off-image glances at
  the interface, per-reading calibration offsets and per-fixation noise.
* Fixation durations 100-800 ms (log-normal, median ≈ 260 ms), 20-70 ms saccades, blinks.

All positions are image pixels unless named ``screen``; times are seconds from the audio start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gazeloc.synthetic.types import Region

SCREEN_W, SCREEN_H = 3840, 2160
IMAGE_AREA = (660.0, 0.0, 3180.0, 2160.0)  # xmin, ymin, xmax, ymax of the image area (screen)
SCREEN_CENTRE = (1920.0, 1080.0)


@dataclass(frozen=True)
class View:
    """A display state: the shown image rectangle and where it is drawn on screen."""

    shown: tuple[int, int, int, int]
    screen: tuple[int, int, int, int]

    def to_screen(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sx0, sy0, sx1, sy1 = self.shown
        dx0, dy0, dx1, dy1 = self.screen
        return (
            dx0 + (x - sx0) * (dx1 - dx0) / (sx1 - sx0),
            dy0 + (y - sy0) * (dy1 - dy0) / (sy1 - sy0),
        )

    def to_image(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sx0, sy0, sx1, sy1 = self.shown
        dx0, dy0, dx1, dy1 = self.screen
        return (
            sx0 + (x - dx0) * (sx1 - sx0) / (dx1 - dx0),
            sy0 + (y - dy0) * (sy1 - sy0) / (dy1 - dy0),
        )

    @property
    def scale(self) -> float:
        """Screen pixels per image pixel (horizontal)."""
        return (self.screen[2] - self.screen[0]) / (self.shown[2] - self.shown[0])


def view_at(
    width: int, height: int, zoom: float = 1.0, centre: tuple[float, float] | None = None
) -> View:
    """The display state for a zoom factor about an image point (1.0: whole image, centred)."""
    base = min((IMAGE_AREA[2] - IMAGE_AREA[0]) / width, (IMAGE_AREA[3] - IMAGE_AREA[1]) / height)
    s = base * zoom
    cx, cy = centre if centre is not None else (width / 2.0, height / 2.0)
    half_w = (IMAGE_AREA[2] - IMAGE_AREA[0]) / 2.0 / s
    half_h = (IMAGE_AREA[3] - IMAGE_AREA[1]) / 2.0 / s
    if zoom > 1.0:  # keep the viewport on the image when possible
        cx = float(np.clip(cx, min(half_w, width / 2), max(width - half_w, width / 2)))
        cy = float(np.clip(cy, min(half_h, height / 2), max(height - half_h, height / 2)))
    x0, x1 = max(0.0, cx - half_w), min(float(width), cx + half_w)
    y0, y1 = max(0.0, cy - half_h), min(float(height), cy + half_h)
    shown = (round(x0), round(y0), round(x1), round(y1))
    screen = (
        round(SCREEN_CENTRE[0] + (x0 - cx) * s),
        round(SCREEN_CENTRE[1] + (y0 - cy) * s),
        round(SCREEN_CENTRE[0] + (x1 - cx) * s),
        round(SCREEN_CENTRE[1] + (y1 - cy) * s),
    )
    return View(shown=shown, screen=screen)


@dataclass(frozen=True)
class Attention:
    """A sentence's gaze episode: look at ``regions`` during [start, end]."""

    start: float
    end: float
    regions: tuple[Region, ...]
    sentence: int
    targets: tuple[int, ...]
    """Finding indices the regions belong to (ground truth)."""


@dataclass(frozen=True)
class GazeScene:
    """Everything the gaze model needs about one reading."""

    width: int
    height: int
    lungs: tuple[Region, Region]
    heart: Region
    chest_box: tuple[int, int, int, int]
    findings: tuple[tuple[Region, ...], ...]
    """Regions per finding (index = finding index)."""
    dictation_start: float
    dictation_end: float
    attention: tuple[Attention, ...]


@dataclass
class Fixations:
    """Fixation rows in REFLACX column semantics (numpy arrays of equal length)."""

    start: np.ndarray
    end: np.ndarray
    x: np.ndarray
    y: np.ndarray
    pupil: np.ndarray
    ang_x: np.ndarray
    ang_y: np.ndarray
    window_width: np.ndarray
    window_level: np.ndarray
    shown: np.ndarray  # (n, 4) int
    screen: np.ndarray  # (n, 4) int
    phase: np.ndarray  # 0 free search, 1 dictation
    sentence: np.ndarray  # sentence index of the attention episode, -1 if none
    target: np.ndarray  # finding index looked at on purpose, -1 if none

    def __len__(self) -> int:
        return len(self.start)


def _point_in(
    region: Region, rng: np.random.Generator, shrink: float = 0.85
) -> tuple[float, float]:
    r = np.sqrt(rng.random()) * shrink
    a = rng.random() * 2 * np.pi
    return region.cx + r * region.rx * np.cos(a), region.cy + r * region.ry * np.sin(a)


def _screen_ppd(sx: float, sy: float, base: float) -> tuple[float, float]:
    """Screen pixels per degree at a screen position (slightly less away from the centre)."""
    d2 = ((sx - SCREEN_CENTRE[0]) ** 2 + (sy - SCREEN_CENTRE[1]) ** 2) / (1920.0**2)
    factor = 1.0 - 0.06 * d2
    return base * factor, base * factor * 0.992


def _zoom_episodes(scene: GazeScene, rng: np.random.Generator) -> list[tuple[float, float, View]]:
    """Zoom/pan episodes (start, end, view); outside them the whole image is shown."""
    episodes: list[tuple[float, float, View]] = []
    if rng.random() >= 0.35:
        return episodes
    t_lo, t_hi = scene.dictation_start * 0.5, scene.dictation_end - 2.0
    if t_hi - t_lo < 4.0:
        return episodes
    n = int(rng.integers(1, 3))
    starts = np.sort(rng.uniform(t_lo, t_hi, size=n))
    last_end = 0.0
    for start in starts:
        start = max(start, last_end + 0.5)
        end = min(start + rng.uniform(3.0, 14.0), scene.dictation_end)
        if end - start < 1.5:
            continue
        if scene.findings and rng.random() < 0.7:
            regions = scene.findings[int(rng.integers(len(scene.findings)))]
            region = regions[int(rng.integers(len(regions)))]
            centre = (region.cx, region.cy)
        else:
            centre = _point_in(scene.lungs[int(rng.integers(2))], rng)
        zoom = float(rng.uniform(1.3, 2.6))
        episodes.append((start, end, view_at(scene.width, scene.height, zoom, centre)))
        # a pan within the episode
        if rng.random() < 0.3 and end - start > 6.0:
            mid = start + (end - start) / 2
            pan = (
                centre[0] + rng.normal(0, 0.1) * scene.width,
                centre[1] + rng.normal(0, 0.1) * scene.height,
            )
            episodes[-1] = (start, mid, episodes[-1][2])
            episodes.append((mid, end, view_at(scene.width, scene.height, zoom, pan)))
        last_end = end
    return episodes


def simulate_fixations(scene: GazeScene, rng: np.random.Generator) -> Fixations:
    """Simulate one reading's fixations (see the module docstring for the model)."""
    w, h = scene.width, scene.height
    full = view_at(w, h)
    episodes = _zoom_episodes(scene, rng)
    base_ppd = float(rng.normal(93.5, 1.5))
    calib = rng.normal(0.0, 0.35, size=2) * base_ppd  # screen px
    lag = float(np.clip(rng.normal(0.4, 0.25), -0.1, 1.2))
    windowing = rng.random() < 0.2
    window_time = float(rng.uniform(0.0, scene.dictation_end)) if windowing else np.inf
    window_after = (
        round(float(rng.uniform(0.6, 1.0)), 5),
        round(float(rng.uniform(0.42, 0.58)), 5),
    )
    p_target = float(np.clip(rng.normal(0.82, 0.05), 0.68, 0.92))

    attention = [
        Attention(a.start, a.end + lag, a.regions, a.sentence, a.targets) for a in scene.attention
    ]
    t = float(rng.uniform(0.12, 0.45))
    t_stop = scene.dictation_end + float(rng.uniform(0.4, 2.0))
    rows: list[tuple] = []
    prev: tuple[float, float] | None = None
    prev_key = None
    while t < t_stop:
        dur = float(np.clip(rng.lognormal(np.log(0.26), 0.42), 0.1, 0.8))
        view = full
        for e_start, e_end, e_view in episodes:
            if e_start <= t < e_end:
                view = e_view
        phase = 0 if t < scene.dictation_start else 1
        active = [a for a in attention if a.start <= t <= a.end]
        key: tuple = ("free",)
        sentence, target = -1, -1
        point: tuple[float, float] | None = None
        ui_glance = rng.random() < 0.02
        if ui_glance:
            sx, sy = rng.uniform(80, 620), rng.uniform(200, 2000)
            point = tuple(float(v) for v in view.to_image(np.array(sx), np.array(sy)))
            key = ("ui",)
        elif active:
            episode = active[0]  # the sentence being dictated keeps priority until its mention
            sentence = episode.sentence
            progress = (t - episode.start) / max(episode.end - episode.start, 1e-6)
            later = [a for a in attention if a.start > episode.start and a.regions]
            if later and progress > 0.6 and rng.random() < 0.08:
                nxt = later[0]
                region = nxt.regions[int(rng.integers(len(nxt.regions)))]
                point = _point_in(region, rng)
                target = nxt.targets[0]
                key = ("ahead", nxt.sentence)
            elif rng.random() < p_target:
                k = int(rng.integers(len(episode.regions)))
                point = _point_in(episode.regions[k], rng)
                target = episode.targets[k]
                key = ("target", sentence, k)
        elif scene.findings and rng.random() < (0.06 if phase == 0 else 0.04):
            idx = int(rng.integers(len(scene.findings)))
            regions = scene.findings[idx]
            point = _point_in(regions[int(rng.integers(len(regions)))], rng)
            target = idx
            key = ("finding", idx)
        if point is None:
            if prev is not None and prev_key == ("free",) and rng.random() < 0.4:
                step = rng.normal(0.0, 1.8, size=2) * base_ppd / view.scale
                point = (prev[0] + step[0], prev[1] + step[1])
            else:
                u = rng.random()
                if u < 0.45:
                    point = _point_in(scene.lungs[int(rng.integers(2))], rng, shrink=1.0)
                elif u < 0.57:
                    point = _point_in(scene.heart, rng, shrink=1.1)
                else:  # the rest of the chest: bones, soft tissue, upper abdomen
                    x0, y0, x1, y1 = scene.chest_box
                    dx, dy = 0.08 * (x1 - x0), 0.08 * (y1 - y0)
                    point = (rng.uniform(x0 - dx, x1 + dx), rng.uniform(y0 - dy, y1 + 1.5 * dy))
        if view is not full and not ui_glance:
            sx0, sy0, sx1, sy1 = view.shown
            if not (sx0 <= point[0] < sx1 and sy0 <= point[1] < sy1):
                point = (rng.uniform(sx0, sx1), rng.uniform(sy0, sy1))
                target, key = -1, ("free",)
        sx, sy = view.to_screen(np.array(point[0]), np.array(point[1]))
        noise = rng.normal(0.0, 0.22, size=2) * base_ppd
        sx, sy = float(sx + calib[0] + noise[0]), float(sy + calib[1] + noise[1])
        ix, iy = view.to_image(np.array(sx), np.array(sy))
        ppd_x, ppd_y = _screen_ppd(sx, sy, base_ppd)
        scale_x = view.scale
        scale_y = (view.screen[3] - view.screen[1]) / (view.shown[3] - view.shown[1])
        ww, wl = window_after if t >= window_time else (1.0, 0.5)
        start = round(t, 3)
        end = round(t + dur, 3)
        if end <= start:
            end = round(start + 0.1, 3)
        rows.append(
            (
                start,
                end,
                round(float(ix)),
                round(float(iy)),
                round(float(np.clip(rng.normal(1.0, 0.07), 0.6, 1.6)), 3),
                max(1, round(ppd_x / scale_x)),
                max(1, round(ppd_y / scale_y)),
                ww,
                wl,
                view.shown,
                view.screen,
                phase,
                sentence,
                target,
            )
        )
        prev, prev_key = point, key
        gap = float(rng.uniform(0.02, 0.07))
        if rng.random() < 0.03:
            gap += float(rng.uniform(0.1, 0.3))  # blink
        t = end + gap
    cols = list(zip(*rows, strict=True))
    return Fixations(
        start=np.array(cols[0]),
        end=np.array(cols[1]),
        x=np.array(cols[2], dtype=np.int64),
        y=np.array(cols[3], dtype=np.int64),
        pupil=np.array(cols[4]),
        ang_x=np.array(cols[5], dtype=np.int64),
        ang_y=np.array(cols[6], dtype=np.int64),
        window_width=np.array(cols[7]),
        window_level=np.array(cols[8]),
        shown=np.array(cols[9], dtype=np.int64),
        screen=np.array(cols[10], dtype=np.int64),
        phase=np.array(cols[11], dtype=np.int8),
        sentence=np.array(cols[12], dtype=np.int16),
        target=np.array(cols[13], dtype=np.int16),
    )


def attention_episodes(
    sentence_times: Sequence[tuple[float, float | None]],
    sentence_targets: Sequence[Sequence[int]],
    findings: Sequence[Sequence[Region]],
    rng: np.random.Generator,
) -> tuple[Attention, ...]:
    """Gaze episodes for sentences that report findings.

    ``sentence_times`` holds (sentence start, last mention time) per sentence; an episode
    starts 1-3 s before the sentence and ends at its last mention (the lag is added later).
    """
    episodes = []
    for index, ((start, last), targets) in enumerate(
        zip(sentence_times, sentence_targets, strict=True)
    ):
        if not targets or last is None:
            continue
        lead = float(rng.uniform(1.0, 3.0))
        regions: list[Region] = []
        owners: list[int] = []
        for finding in targets:
            for region in findings[finding]:
                regions.append(region)
                owners.append(finding)
        episodes.append(
            Attention(max(0.0, start - lead), last, tuple(regions), index, tuple(owners))
        )
    return tuple(episodes)


def gaze_samples(fix: Fixations, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """1000 Hz gaze samples consistent with the fixations (saccades interpolated, blinks empty).

    Returns columns of ``gaze.csv``; blink samples have NaN in position, pupil and angular
    resolution columns (written as empty fields).
    """
    t0 = np.floor(fix.start[0] * 1000) / 1000
    t1 = fix.end[-1]
    n = round((t1 - t0) * 1000) + 1
    times = np.round(t0 + np.arange(n) / 1000.0, 3)
    idx = np.clip(np.searchsorted(fix.start, times, side="right") - 1, 0, len(fix) - 1)
    inside = times <= fix.end[idx]
    nxt = np.clip(idx + 1, 0, len(fix) - 1)
    gap_start = fix.end[idx]
    gap_len = np.maximum(fix.start[nxt] - gap_start, 1e-6)
    frac = np.clip((times - gap_start) / gap_len, 0.0, 1.0)
    x = np.where(inside, fix.x[idx], fix.x[idx] + frac * (fix.x[nxt] - fix.x[idx])).astype(float)
    y = np.where(inside, fix.y[idx], fix.y[idx] + frac * (fix.y[nxt] - fix.y[idx])).astype(float)
    jitter = fix.ang_x[idx] * 0.05
    x += rng.normal(0.0, 1.0, n) * jitter
    y += rng.normal(0.0, 1.0, n) * jitter
    blink = ~inside & (gap_len > 0.09)
    pupil = np.round(fix.pupil[idx] + rng.normal(0.0, 0.01, n), 3)
    cols = {
        "timestamp_sample": times,
        "x_position": np.where(blink, np.nan, np.round(x)),
        "y_position": np.where(blink, np.nan, np.round(y)),
        "pupil_area_normalized": np.where(blink, np.nan, pupil),
        "angular_resolution_x_pixels_per_degree": np.where(blink, np.nan, fix.ang_x[idx]),
        "angular_resolution_y_pixels_per_degree": np.where(blink, np.nan, fix.ang_y[idx]),
        "window_width": fix.window_width[idx],
        "window_level": fix.window_level[idx],
    }
    names = ("xmin", "ymin", "xmax", "ymax")
    for k, name in enumerate(names):
        cols[f"{name}_shown_from_image"] = fix.shown[idx, k]
    for k, name in enumerate(names):
        cols[f"{name}_in_screen_coordinates"] = fix.screen[idx, k]
    return cols
