"""``gazeloc predict``: apply a trained ``model.pt`` to new images.

For every readable input image (:mod:`gazeloc.predict.read`): the image-level probability of
each label (Eq. 1, as the evaluation computes it) and the heatmap of the chosen source, mapped
back to the image's own pixels (:mod:`gazeloc.predict.geometry`). Outputs in ``DIR``:

* ``predictions.csv`` — one row per image: ``path, name, width, height`` and one column per
  label with its probability;
* ``heatmaps.h5`` — one group per image (``name``; attributes ``path``, ``width``,
  ``height``), one dataset per reported label (``H × W`` float16 in [0, 1], Blosc-LZ4
  compressed — read with ``import hdf5plugin``), with attributes ``probability`` and
  ``threshold`` (when there is one); root attributes: model, experiment, seed, source and how
  it was chosen;
* ``overlays/<name>.png`` — one panel per reported label: the image with the map blended in
  colour, outlined where it passes the threshold, with the label and its probability;
* ``skipped.csv`` — ``path, reason`` of every file that could not be read;
* ``predict.json`` — the run: model, source, thresholds, counts, time per phase.

A label is reported when its probability is at least ``min_probability`` (or always, with
``all_labels``). Nothing is half-written: every output is written under a temporary name and
renamed when the run is complete.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gazeloc.errors import DataFormatError
from gazeloc.images.frame import frame_geometry
from gazeloc.ioutil import atomic_path, atomic_write_text
from gazeloc.labels import DISPLAY_NAMES, MODEL_LABELS
from gazeloc.predict.geometry import to_image
from gazeloc.predict.read import LoadedImage, UnsupportedImage, load_image

log = logging.getLogger(__name__)

SOURCES = ("grid", "decoder", "gradcam", "chosen")
SOURCE_NAMES = {"grid": "spatial activations", "decoder": "decoder", "gradcam": "Grad-CAM"}
PHASES = ("read", "preprocess", "forward", "write")


@dataclass(frozen=True)
class PredictOptions:
    """Options of :func:`predict` (the command's flags)."""

    source: str = "chosen"
    selection: str | None = None
    """A ``selection.csv``; None: the one of the model's results folder when it exists."""
    min_probability: float = 0.5
    all_labels: bool = False
    batch_size: int = 8
    device: str = "auto"
    workers: int = 0
    strict: bool = False
    overlay_size: int = 512
    """Long side of each overlay panel in pixels (0: the original size)."""
    progress: bool = True

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if not 0 <= self.min_probability <= 1:
            raise ValueError("min_probability must be in [0, 1]")
        if self.batch_size < 1:
            raise ValueError("batch size must be >= 1")


@dataclass(frozen=True)
class SourceChoice:
    """The heatmap source, the per-label thresholds (None: none) and how they were chosen."""

    source: str
    thresholds: dict[str, float | None]
    note: str
    selection: str | None


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """The files to read: files as given, folders walked recursively (sorted; hidden files
    and folders left out). A path that does not exist is an error."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            out.extend(
                p
                for p in sorted(item.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(item).parts)
            )
        elif item.exists():
            out.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return list(dict.fromkeys(out))


def default_selection(model_path: str | Path) -> Path | None:
    """``<results>/tables/selection.csv`` of ``<results>/models/<experiment>/seed<n>/model.pt``
    when it exists."""
    path = Path(model_path).resolve()
    if len(path.parents) > 3 and path.parents[2].name == "models":
        candidate = path.parents[3] / "tables" / "selection.csv"
        if candidate.is_file():
            return candidate
    return None


def reference_source(experiment: str | None, has_decoder: bool) -> str:
    """The reference's fixed source: spatial activations for the unannotated baseline (and
    any model without a decoder), the decoder otherwise."""
    return "grid" if experiment == "unannotated" or not has_decoder else "decoder"


def choose_source(
    requested: str,
    experiment: str | None,
    has_decoder: bool,
    selection: str | Path | None,
) -> SourceChoice:
    """Resolve ``--source`` against a ``selection.csv`` (module doc of :mod:`.run`)."""
    import polars as pl

    rows = None
    if selection is not None:
        table = pl.read_csv(selection, infer_schema_length=0)
        missing = [
            c for c in ("experiment", "source", "label", "threshold") if c not in table.columns
        ]
        if missing:
            raise DataFormatError(selection, "missing column", column=missing[0])
        rows = table.filter(pl.col("experiment") == str(experiment))
    none = dict.fromkeys(MODEL_LABELS)
    if requested == "chosen":
        reported = (
            rows.filter(pl.col("reported").str.to_lowercase() == "true")
            if rows is not None and "reported" in rows.columns
            else None
        )
        if reported is None or reported.is_empty():
            source = reference_source(experiment, has_decoder)
            why = (
                "no selection.csv"
                if selection is None
                else f"{selection} has no choice for {experiment}"
            )
            note = f"{why}: the reference's fixed source ({SOURCE_NAMES[source]}) and no threshold"
            return SourceChoice(source, none, note, str(selection) if selection else None)
        source = reported["source"][0]
        note = f"source and thresholds chosen on validation ({selection})"
        rows = reported
    else:
        source = requested
        if source == "decoder" and not has_decoder:
            raise ValueError("--source decoder: this model has no decoder")
        rows = rows.filter(pl.col("source") == source) if rows is not None else None
        note = (
            f"source {SOURCE_NAMES[source]} as asked; thresholds chosen on validation ({selection})"
            if rows is not None and not rows.is_empty()
            else f"source {SOURCE_NAMES[source]} as asked; no threshold"
        )
    thresholds = dict(none)
    if rows is not None:
        for label, value in zip(rows["label"].to_list(), rows["threshold"].to_list(), strict=True):
            if label in thresholds and value not in (None, ""):
                thresholds[label] = float(value)
    return SourceChoice(source, thresholds, note, str(selection) if selection else None)


class _Files(Dataset):
    def __init__(self, paths: list[Path], size: int, dct_scaling: bool, display: int) -> None:
        self.paths, self.size, self.dct, self.display = paths, size, dct_scaling, display

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> LoadedImage | UnsupportedImage:
        try:
            return load_image(
                self.paths[i], self.size, dct_scaling=self.dct, display_limit=self.display
            )
        except UnsupportedImage as exc:
            return exc


def _names(paths: Iterable[Path]) -> list[str]:
    """Output names: the file stem, with ``-2``, ``-3``, ... for repeated stems."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in p.stem) or "image"
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        out.append(stem if n == 1 else f"{stem}-{n}")
    return out


def _jet() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (2-px wide edge)."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    edge = mask & ~inner
    edge[1:] |= edge[:-1]
    return edge


def overlay_png(
    display: np.ndarray,
    panels: list[tuple[str, float, np.ndarray, float | None]],
    jet: np.ndarray,
    note: str,
) -> bytes:
    """PNG bytes: one panel per ``(label, probability, map at display size, threshold)``
    (or the plain image with ``note`` when there is none)."""
    from PIL import Image, ImageDraw

    gray = display.astype(np.uint16)[..., None]
    tiles = []
    for label, probability, heat, threshold in panels or [("", float("nan"), None, None)]:
        if heat is None:
            rgb = np.repeat(display[..., None], 3, axis=2)
            text = note
        else:
            values = np.clip(heat.astype(np.float32), 0, 1)
            level = np.rint(values * 255).astype(np.uint8)
            alpha = (level >> 1).astype(np.uint16)[..., None]  # 0.5 x the map value, of 256
            colour = jet[level].astype(np.uint16)
            rgb = ((gray * (256 - alpha) + colour * alpha) >> 8).astype(np.uint8)
            if threshold is not None:
                rgb[_outline(values > threshold)] = (255, 255, 255)
            text = f"{DISPLAY_NAMES.get(label, label)}: p = {probability:.3f}"
            text += f", t = {threshold:g}" if threshold is not None else ", no threshold"
        tile = Image.fromarray(rgb)
        draw = ImageDraw.Draw(tile)
        box = draw.textbbox((4, 4), text)
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
        draw.text((4, 4), text, fill=(255, 255, 0))
        tiles.append(tile)
    width = sum(t.width for t in tiles) + 4 * (len(tiles) - 1)
    sheet = Image.new("RGB", (width, tiles[0].height), (0, 0, 0))
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0))
        x += tile.width + 4
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _pick_device(name: str) -> torch.device:
    from gazeloc.devices import pick_device

    return pick_device(name, "--device")


def forward_batch(
    model: torch.nn.Module, frames: torch.Tensor, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``[B, K]`` (float64) and the source's maps ``[B, K, m, m]`` (float32) of
    uint8 frames ``[B, 1, S, S]`` already on the model's device."""
    from gazeloc.evaluate.maps import gradcam
    from gazeloc.model import image_probabilities

    with torch.no_grad():
        images = frames.float().div_(255.0)
        out = model(images, decoder=source == "decoder")
        probs = image_probabilities(out.grid_logits.float())
        if source == "grid":
            maps = torch.sigmoid(out.grid_logits.float())
        elif source == "decoder":
            maps = torch.sigmoid(out.decoder_logits.float())
        else:
            maps = gradcam(model, out)
        return probs.double().cpu().numpy(), maps.float().cpu().numpy()


def predict(
    model_path: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    options: PredictOptions = PredictOptions(),
) -> dict[str, Any]:
    """Run the model on the inputs and write the outputs (module doc); return the summary
    that ``predict.json`` holds."""
    import hdf5plugin
    from tqdm import tqdm

    from gazeloc.h5 import open_h5
    from gazeloc.model import load_model
    from gazeloc.model.card import image_settings

    out_dir = Path(out_dir)
    device = _pick_device(options.device)
    model, meta = load_model(model_path, map_location="cpu")
    model.to(device).eval()
    frame = image_settings(meta)
    if not frame["recorded"]:
        log.warning(
            "%s does not record its image settings (older gazeloc): frame %d px, DCT scaling "
            "%s assumed (the defaults)",
            model_path,
            frame["size"],
            frame["dct_scaling"],
        )
    size = int(frame["size"])
    if size != model.settings.input_size:
        raise ValueError(
            f"{model_path}: frame {size} px but the network takes {model.settings.input_size}"
        )
    experiment = meta.get("experiment")
    selection = options.selection if options.selection else default_selection(model_path)
    choice = choose_source(options.source, experiment, model.decoder is not None, selection)
    log.info(
        "model %s (%s, seed %s) on %s; %s",
        model_path,
        experiment,
        meta.get("seed"),
        device,
        choice.note,
    )

    paths = collect_inputs(inputs)
    dataset = _Files(paths, size, bool(frame["dct_scaling"]), options.overlay_size)
    loader = DataLoader(
        dataset,
        batch_size=options.batch_size,
        num_workers=options.workers,
        collate_fn=list,
        pin_memory=device.type == "cuda",
    )
    seconds = dict.fromkeys(PHASES, 0.0)
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    names = iter(_names(paths))
    jet = _jet()
    blosc = hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)
    with ExitStack() as stack:
        tmp_csv = stack.enter_context(atomic_path(out_dir / "predictions.csv"))
        tmp_h5 = stack.enter_context(atomic_path(out_dir / "heatmaps.h5"))
        tmp_overlays = stack.enter_context(atomic_path(out_dir / "overlays"))
        tmp_overlays.mkdir()
        h5 = stack.enter_context(open_h5(tmp_h5, "w"))
        h5.attrs.update(
            {
                "model": str(model_path),
                "experiment": str(experiment),
                "seed": int(meta.get("seed") or 0),
                "source": choice.source,
                "source_note": choice.note,
                "selection": choice.selection or "",
                "min_probability": -1.0 if options.all_labels else options.min_probability,
                "labels": list(MODEL_LABELS),
                "frame_size": size,
                "dct_scaling": bool(frame["dct_scaling"]),
            }
        )
        bar = stack.enter_context(
            tqdm(
                total=len(paths),
                desc="predict",
                unit="img",
                disable=not options.progress,
                mininterval=1.0,
            )
        )
        for batch in loader:
            loaded: list[tuple[str, LoadedImage]] = []
            for item in batch:
                name = next(names)
                if isinstance(item, UnsupportedImage):
                    if options.strict:
                        raise DataFormatError(item.path, f"{item.reason} (--strict)")
                    log.warning("skipped %s: %s", item.path, item.reason)
                    skipped.append((str(item.path), item.reason))
                    continue
                for phase, value in item.seconds.items():
                    seconds[phase] += value
                loaded.append((name, item))
            bar.update(len(batch) - len(loaded))
            if not loaded:
                continue
            t0 = time.perf_counter()
            frames = torch.from_numpy(np.stack([it.frame for _, it in loaded]))[:, None]
            probs, maps = forward_batch(model, frames.to(device), choice.source)
            t1 = time.perf_counter()
            seconds["forward"] += t1 - t0
            for (name, it), p, m in zip(loaded, probs, maps, strict=True):
                _write_one(h5, tmp_overlays, name, it, p, m, choice, options, blosc, jet)
                rows.append(
                    {"path": str(it.path), "name": name, "width": it.width, "height": it.height}
                    | {label: float(v) for label, v in zip(MODEL_LABELS, p, strict=True)}
                )
            seconds["write"] += time.perf_counter() - t1
            bar.update(len(loaded))
        t = time.perf_counter()
        _write_csv(tmp_csv, rows)
        seconds["write"] += time.perf_counter() - t
    summary = {
        "model": str(model_path),
        "experiment": experiment,
        "seed": meta.get("seed"),
        "device": str(device),
        "options": asdict(options),
        "source": choice.source,
        "source_note": choice.note,
        "selection": choice.selection,
        "thresholds": choice.thresholds,
        "images": len(rows),
        "skipped": len(skipped),
        "seconds": seconds,
    }
    atomic_write_text(
        out_dir / "skipped.csv",
        "path,reason\n" + "".join(_csv_line([p, r]) for p, r in skipped),
    )
    atomic_write_text(out_dir / "predict.json", json.dumps(summary, indent=2) + "\n")
    log.info(
        "%d images -> %s (%d skipped, listed in skipped.csv); seconds: %s",
        len(rows),
        out_dir,
        len(skipped),
        ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()),
    )
    return summary


def _csv_line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = ["path", "name", "width", "height", *MODEL_LABELS]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (f"{v:.9g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


def _write_one(
    h5: Any,
    overlays: Path,
    name: str,
    item: LoadedImage,
    probs: np.ndarray,
    maps: np.ndarray,
    choice: SourceChoice,
    options: PredictOptions,
    blosc: Any,
    jet: np.ndarray,
) -> None:
    geometry = frame_geometry(item.width, item.height, item.frame.shape[-1])
    group = h5.create_group(name)
    group.attrs.update(
        {"path": str(item.path), "width": item.width, "height": item.height, "kind": item.kind}
    )
    chosen = [
        k
        for k in range(len(MODEL_LABELS))
        if options.all_labels or probs[k] >= options.min_probability
    ]
    small = maps[chosen].astype(np.float16)
    panels = []
    display = (item.display.shape[1], item.display.shape[0])
    for j, k in enumerate(chosen):
        label = MODEL_LABELS[k]
        full = to_image(small[j], geometry)
        dset = group.create_dataset(
            label, data=full, chunks=(min(256, full.shape[0]), min(256, full.shape[1])), **blosc
        )
        dset.attrs["probability"] = float(probs[k])
        threshold = choice.thresholds.get(label)
        if threshold is not None:
            dset.attrs["threshold"] = threshold
        panels.append((label, float(probs[k]), to_image(small[j], geometry, display), threshold))
    note = f"no label with p >= {options.min_probability:g}"
    (overlays / f"{name}.png").write_bytes(overlay_png(item.display, panels, jet, note))
