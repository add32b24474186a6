"""The training loop: one experiment and seed, resumable, reproducible on the CPU.

Per run (reference-method.md §8): AMSGrad Adam (``lr``, coupled weight decay), batches drawn
uniformly without replacement from the union of MIMIC train and the annotated train readings
(``drop_last``), ``L = L_I + λ_T L_T``, and after every epoch the mean AUC over labels on MIMIC
val; the best epoch (ties: the later one) becomes ``model.pt``. As in the reference, a batch
without a decoder target (no annotated image with a positive, localized label) gives the
decoder no gradient at all, so the optimizer leaves its weights, moments and weight decay
alone on that step (:meth:`Step.loss`).

Reproducibility: every random choice is a function of ``(seed, epoch, step)`` — the model's
initialisation (``seed``), each epoch's permutation (``seed, epoch``), each batch's
augmentation parameters (``seed, epoch, step``) — and nothing else draws random numbers, so a
run that resumes from a checkpoint takes exactly the steps the uninterrupted run takes. On the
CPU the final weights are identical (tested); on a GPU, cuDNN and bf16 make them close only.

Files of a run folder ``{out}/`` (design.md):

* ``model.pt`` — the best epoch: ``state_dict``, ``model`` (architecture settings), ``settings``
  (the resolved experiment), ``experiment``, ``seed``, ``epoch`` (1-based), ``val_auc``,
  ``labels``, ``ablation``, ``options``, ``images`` (the frame settings of the shards: size,
  DCT scaling, resampling — what ``gazeloc predict`` repeats), ``initialisation`` (the encoder's
  starting weights and their SHA-256) and ``data`` (dataset roots, image counts by split);
* ``model_card.md`` — those facts for a reader (:mod:`gazeloc.model.card`);
* ``train_log.csv`` — one row per epoch (:data:`LOG_COLUMNS` + per-label validation AUCs);
* ``resume/last.pt`` — model, optimizer, position (epoch, step), the best so far and the log;
  written after each epoch and every ``checkpoint_minutes`` within an epoch;
  ``resume/best.pt`` — the best weights so far. A checkpoint whose fingerprint (method settings,
  seed, input files' sizes and times) differs from the run's is ignored (logged). Kept after
  the run, so that rerunning a finished run only rewrites the outputs.

All checkpoints are read with ``torch.load(..., weights_only=True)`` and written atomically.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from gazeloc.errors import NonFiniteLossError
from gazeloc.ioutil import atomic_path, atomic_write_text
from gazeloc.labels import MODEL_LABELS
from gazeloc.model import GazeLocNet, ModelSettings, build_model, image_probabilities
from gazeloc.model.card import (
    card_facts,
    initialisation_facts,
    manifest_image_settings,
    render_card,
)
from gazeloc.model.losses import decoder_loss, mil_loss, total_loss
from gazeloc.train.augment import augment_batch, sample_params
from gazeloc.train.data import ImageLabelSet, TrainingData, build_data, collate
from gazeloc.train.settings import TrainingOptions, ablation_flags, method_settings, settings_json

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "gazeloc-resume-1"
POSTFIX_EVERY = 10
"""Steps between progress-bar updates of the mean loss (each update waits for the device)."""
MODEL_FORMAT = "gazeloc-model-1"
LOG_COLUMNS = (
    "epoch",
    "steps",
    "loss",
    "loss_mil",
    "loss_decoder",
    "val_auc",
    "images_per_s",
    "seconds",
    "best",
)


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed from ``parts`` (stable across Python runs and machines)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from gazeloc.config import ConfigError

        raise ConfigError(
            "device is cuda but PyTorch sees no CUDA device here (torch.cuda.is_available() "
            "is False); set training.device/evaluation.device to auto or cpu, or run on a GPU node"
        )
    return torch.device(name)


def _file_stamp(path: str | Path | None) -> list[Any] | None:
    if path is None:
        return None
    stat = Path(path).stat()
    return [Path(path).name, stat.st_size, stat.st_mtime_ns]


def fingerprint(resolved: dict[str, Any], seed: int, inputs: dict[str, Any]) -> str:
    """What a resume checkpoint must match: method settings, seed and input files."""
    payload = {
        "settings": method_settings(resolved),
        "seed": seed,
        "inputs": {k: _file_stamp(v) for k, v in sorted(inputs.items())},
    }
    return hashlib.sha256(settings_json(payload).encode()).hexdigest()


def model_settings(resolved: dict[str, Any]) -> ModelSettings:
    values = dict(resolved.get("model", {}))
    values["input_size"] = int(resolved.get("input_size", 512))
    return ModelSettings.from_dict(values)


def epoch_batches(n_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's batches: a seeded permutation cut into full batches (``drop_last``)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, "epoch", epoch))
    order = torch.randperm(n_items, generator=generator).tolist()
    n_batches = n_items // batch_size
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]


def annotation_targets(
    maps: torch.Tensor, grid: int, decoder_size: int | None, threshold: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Grid target (max-pool to ``G``, ``> threshold``) and decoder target (max-pool to
    ``8G``, not thresholded) of annotation maps ``[A, K, S, S]`` (reference §4.5)."""
    grid_target = F.adaptive_max_pool2d(maps, grid) > threshold
    dec = F.adaptive_max_pool2d(maps, decoder_size) if decoder_size else None
    return grid_target, dec


def decoder_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[B, K]`` bool: the image-label pairs that train the decoder (annotated, positive,
    with a localization: ``known``)."""
    return batch["annotated"][:, None] & (batch["labels"] > 0) & batch["known"]


def decoder_supervised(batch: dict[str, torch.Tensor]) -> bool:
    """Whether a batch has a decoder target at all (at least one :func:`decoder_mask` pair).

    Read from the batch as the loader gives it (CPU tensors), so deciding costs no device
    synchronisation."""
    return bool(decoder_mask(batch).any())


class Step:
    """One optimisation step's loss computation (shared by training and benchmarks)."""

    def __init__(
        self,
        model: GazeLocNet,
        options: TrainingOptions,
        device: torch.device,
        *,
        binary_maps: bool = False,
        compiled: torch.nn.Module | None = None,
    ) -> None:
        self.model = model
        self.forward = compiled if compiled is not None else model
        self.options = options
        self.device = device
        self.binary_maps = binary_maps
        self.settings = model.settings
        cuda = device.type == "cuda"
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if cuda and options.bf16 else nullcontext()
        )
        self.channels_last = cuda and options.channels_last

    def prepare(
        self, batch: dict[str, torch.Tensor], params: Any | None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Move a batch to the device and augment it: ``images`` float in [0, 1], maps float."""
        dev = self.device
        nb = dev.type == "cuda"
        images = batch["images"].to(dev, non_blocking=nb).float().div_(255.0)
        maps = batch["maps"].to(dev, non_blocking=nb).float()
        rest = {
            k: batch[k].to(dev, non_blocking=nb)
            for k in ("labels", "known", "annotated", "map_index")
        }
        if params is not None:
            images, maps = augment_batch(
                images,
                maps,
                batch["map_index"],  # the CPU copy: selecting parameters needs no device sync
                params,
                interpolation=self.options.augment_interpolation,
                binary_maps=self.binary_maps,
            )
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, maps, rest

    def loss(
        self, batch: dict[str, torch.Tensor], params: Any | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(L, L_I, L_T)`` of a batch (``L_T`` None without a decoder).

        On a batch without a decoder target (no annotated image with a positive, localized
        label: :func:`decoder_supervised`) ``L_T`` is a constant 0 outside the graph, as in
        the reference: the decoder still runs forward (its BatchNorm statistics update) but
        its parameters get no gradient (``grad`` stays None), so the optimizer's step leaves
        them, their Adam moments and their weight decay untouched.
        """
        supervised = decoder_supervised(batch)  # the CPU copy: no device sync
        images, maps, b = self.prepare(batch, params)
        with self.autocast:
            out = self.forward(images)
        grid_logits = out.grid_logits.float()
        n, k, g, _ = grid_logits.shape
        use_decoder = out.decoder_logits is not None
        grid_t, dec_t = annotation_targets(
            maps,
            g,
            self.settings.decoder_size if use_decoder else None,
            self.options.heatmap_threshold,
        )
        annotation = torch.zeros((n, k, g, g), dtype=torch.bool, device=self.device)
        annotation[b["map_index"]] = grid_t
        mil = mil_loss(
            grid_logits,
            b["labels"],
            annotation,
            b["annotated"],
            lambda_a=self.options.lambda_a,
            balanced=self.options.balanced,
            label_mask=b["known"],
        )
        dec = None
        if use_decoder and not supervised:
            dec = torch.zeros((), device=self.device)
        elif use_decoder:
            logits = out.decoder_logits.float()
            target = torch.zeros_like(logits)
            target[b["map_index"]] = dec_t
            dec = decoder_loss(
                logits,
                target,
                decoder_mask(b),
                binary=self.options.decoder_target == "binary",
                threshold=self.options.heatmap_threshold,
            )
        return total_loss(mil, dec, lambda_t=self.options.lambda_t), mil, dec


def make_optimizer(model: torch.nn.Module, options: TrainingOptions) -> torch.optim.Optimizer:
    """AMSGrad Adam with coupled (L2) weight decay, as the reference."""
    return torch.optim.Adam(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay, amsgrad=True
    )


def _loader(
    dataset: torch.utils.data.Dataset,
    batches: list[list[int]],
    workers: int,
    device: torch.device,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
    )


@torch.no_grad()
def predict(
    model: GazeLocNet,
    dataset: ImageLabelSet,
    *,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    bf16: bool = True,
) -> np.ndarray:
    """Image-level probabilities ``[N, K]`` (Eq. 1) of every item, in order (eval mode)."""
    was_training = model.training
    model.eval()
    batches = [
        list(range(i, min(i + batch_size, len(dataset))))
        for i in range(0, len(dataset), batch_size)
    ]
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and bf16
        else nullcontext()
    )
    out = []
    for batch in _loader(dataset, batches, workers, device):
        images = batch["images"].to(device).float().div_(255.0)
        with autocast:
            grid_logits = model(images, decoder=False).grid_logits
        out.append(image_probabilities(grid_logits.float()).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, len(MODEL_LABELS)), np.float32)


def label_aucs(scores: np.ndarray, labels: np.ndarray, known: np.ndarray) -> np.ndarray:
    """ROC AUC per label over the images whose label is known; NaN for a label without a
    positive or without a negative."""
    from gazeloc.metrics import auc_per_label

    out = np.full(labels.shape[1], np.nan)
    for k in range(labels.shape[1]):
        rows = known[:, k]
        if rows.any():
            out[k] = auc_per_label(scores[rows, k : k + 1], labels[rows, k : k + 1])[0]
    return out


def warn_thread_change(path: Path, checkpoint: dict[str, Any], device: torch.device) -> bool:
    """Warn (and return True) when a checkpoint was written under another intra-op thread
    count or device: on a CPU, PyTorch's reductions split their work by thread, so the
    resumed run is no longer bit-identical to an uninterrupted one (same settings, slightly
    different numbers)."""
    threads, now = checkpoint.get("threads"), torch.get_num_threads()
    before_device = checkpoint.get("device")
    if before_device is not None and before_device != device.type:
        log.warning(
            "%s was written on %s, resuming on %s: the results will not be bit-identical to "
            "an uninterrupted run",
            path,
            before_device,
            device.type,
        )
        return True
    if threads is not None and threads != now and device.type == "cpu":
        log.warning(
            "%s was written with %d CPU threads, resuming with %d: CPU results are "
            "bit-identical only at equal thread counts (set --threads / the job's threads to "
            "%d to keep them so)",
            path,
            threads,
            now,
            threads,
        )
        return True
    return False


def _save(obj: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _log_csv(rows: list[dict[str, Any]]) -> str:
    columns = [*LOG_COLUMNS, *(f"val_auc_{label}" for label in MODEL_LABELS)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    return buffer.getvalue()


def data_counts(data: TrainingData, index: str | Path) -> dict[str, int]:
    """Images a run trained and validated on, and the MIMIC test images of the index."""
    import polars as pl

    test = pl.read_parquet(index, columns=["split", "in_mimic"]).filter(
        pl.col("in_mimic") & (pl.col("split") == "test")
    )
    return {
        "mimic_train": int(data.train.n_unannotated),
        "annotated_train": int(data.train.n_annotated),
        "mimic_val": len(data.val),
        "mimic_test": int(test.height),
    }


def _better(auc: float, best: float | None) -> bool:
    """Ties favour the later epoch; NaN counts as the lowest value."""
    value = -math.inf if math.isnan(auc) else auc
    return best is None or value >= best


def train(
    resolved: dict[str, Any],
    *,
    index: str | Path,
    manifest: str | Path,
    out_dir: str | Path,
    seed: int,
    heatmaps: str | Path | None = None,
    ellipses: str | Path | None = None,
    progress: bool = True,
    stop_after_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
    data: TrainingData | None = None,
    data_roots: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train (or resume) one run; write ``model.pt``, ``model_card.md`` and ``train_log.csv``
    under ``out_dir``. ``data_roots`` (dataset name → folder) is recorded in the card.

    ``stop_after_steps`` saves a resume checkpoint after that many steps of the whole run and
    returns early (what a kill right after a checkpoint leaves behind); ``on_step(global_step)``
    is called after every step (tests raise from it to simulate a kill). Returns a summary.
    """
    out_dir = Path(out_dir)
    resume_dir = out_dir / "resume"
    options = TrainingOptions.from_dict(resolved.get("training", {}))
    msettings = model_settings(resolved)
    device = pick_device(options.device)
    inputs = {"index": index, "manifest": manifest, "heatmaps": heatmaps, "ellipses": ellipses}
    fp = fingerprint(resolved, seed, inputs)
    # global generators too, in case a library draws from them (the loop itself does not)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    if data is None:
        data = build_data(
            resolved,
            index=index,
            manifest=manifest,
            heatmaps=heatmaps,
            ellipses=ellipses,
            seed=seed,
        )
    n_batches = len(data.train) // options.batch_size
    if n_batches == 0:
        raise ValueError(
            f"{len(data.train)} training images are fewer than one batch of {options.batch_size}"
        )
    model = build_model(msettings, seed=derived_seed(seed, "init")).to(device)
    if device.type == "cuda" and options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, options)

    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_auc": None, "best_epoch": None, "log": []}
    running = {"loss": 0.0, "mil": 0.0, "decoder": 0.0, "seconds": 0.0, "images": 0}
    last = resume_dir / "last.pt"
    if last.is_file():
        checkpoint = _load(last)
        if checkpoint.get("format") == CHECKPOINT_FORMAT and checkpoint.get("fingerprint") == fp:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            state = checkpoint["state"]
            running = checkpoint["running"]
            log.info(
                "resuming from %s at epoch %d, step %d", last, state["epoch"] + 1, state["step"]
            )
            warn_thread_change(last, checkpoint, device)
        else:
            log.warning("ignoring %s: made with other settings or inputs; starting afresh", last)

    compiled = torch.compile(model) if options.compile else None
    step_fn = Step(model, options, device, binary_maps=data.binary_maps, compiled=compiled)

    def new_accumulator() -> torch.Tensor:
        """Loss sums of the epoch on the device (float64: exact across a resume); read back
        only for the progress bar, checkpoints and the log, so steps do not wait for it."""
        values = [running["loss"], running["mil"], running["decoder"]]
        return torch.tensor(values, dtype=torch.float64, device=device)

    def sync_running() -> None:
        running["loss"], running["mil"], running["decoder"] = acc.tolist()

    def checkpoint_now() -> None:
        sync_running()
        _save(
            {
                "format": CHECKPOINT_FORMAT,
                "fingerprint": fp,
                "model": _cpu_state(model),
                "optimizer": optimizer.state_dict(),
                "state": state,
                "running": running,
                "threads": torch.get_num_threads(),
                "device": device.type,
            },
            last,
        )

    global_step = state["epoch"] * n_batches + state["step"]
    last_save = time.monotonic()
    interactive = sys.stderr.isatty()
    from tqdm import tqdm

    name = resolved.get("experiment", "train")
    while state["epoch"] < options.epochs:
        epoch = state["epoch"]
        batches = epoch_batches(len(data.train), options.batch_size, seed, epoch)
        model.train()
        loader = _loader(data.train, batches[state["step"] :], options.workers, device)
        bar = tqdm(
            total=n_batches,
            initial=state["step"],
            desc=f"{name} seed {seed} epoch {epoch + 1}/{options.epochs}",
            unit="step",
            disable=not progress,
            mininterval=0.5 if interactive else 30.0,
            file=sys.stderr,
        )
        acc = new_accumulator()
        tick = time.perf_counter()
        for batch in loader:
            step = state["step"]
            params = None
            if options.augment:
                generator = torch.Generator().manual_seed(
                    derived_seed(seed, "augment", epoch, step)
                )
                params = sample_params(len(batch["images"]), msettings.input_size, generator)
            loss, mil, dec = step_fn.loss(batch, params)
            if not bool(torch.isfinite(loss.detach())):
                total, part_mil = float(loss.detach()), float(mil.detach())
                part_dec = float(dec.detach()) if dec is not None else 0.0
                raise NonFiniteLossError(
                    f"{name} seed {seed}: the loss is not finite at step {step} (epoch "
                    f"{epoch + 1}): total {total:.6g}, MIL {part_mil:.6g}, decoder "
                    f"{part_dec:.6g}; training stopped before the optimizer step (check "
                    "training.lr, lambda_t, lambda_a and the inputs)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            zero = torch.zeros((), device=device)
            parts = [loss, mil, dec if dec is not None else zero]
            acc += torch.stack([x.detach().double() for x in parts])
            now = time.perf_counter()
            running["seconds"] += now - tick
            running["images"] += len(batch["images"])
            tick = now
            state["step"] += 1
            global_step += 1
            bar.update(1)
            if state["step"] % POSTFIX_EVERY == 0 or state["step"] == n_batches:
                sync_running()
                bar.set_postfix(
                    loss=f"{running['loss'] / state['step']:.4g}",
                    img_s=f"{running['images'] / max(running['seconds'], 1e-9):.1f}",
                )
            if on_step is not None:
                on_step(global_step)
            due = time.monotonic() - last_save > 60 * options.checkpoint_minutes
            stop = stop_after_steps is not None and global_step >= stop_after_steps
            if (due or stop) and state["step"] < n_batches:
                checkpoint_now()
                last_save = time.monotonic()
            if stop:
                break
        bar.close()
        sync_running()
        if stop_after_steps is not None and global_step >= stop_after_steps:
            if state["step"] < n_batches:
                log.info("stopping after %d steps (checkpoint saved)", global_step)
                return {"stopped": True, "global_step": global_step}
            stop_at_epoch_end = True
        else:
            stop_at_epoch_end = False

        aucs = (
            label_aucs(
                predict(
                    model,
                    data.val,
                    batch_size=options.batch_size,
                    device=device,
                    workers=options.workers,
                    bf16=options.bf16,
                ),
                data.val.labels,
                data.val.known,
            )
            if len(data.val)
            else np.full(len(MODEL_LABELS), np.nan)
        )
        valid = aucs[~np.isnan(aucs)]
        mean_auc = float(valid.mean()) if valid.size else math.nan
        steps = state["step"]
        row = {
            "epoch": epoch + 1,
            "steps": steps,
            "loss": running["loss"] / steps,
            "loss_mil": running["mil"] / steps,
            "loss_decoder": running["decoder"] / steps if msettings.decoder else "",
            "val_auc": mean_auc,
            "images_per_s": running["images"] / max(running["seconds"], 1e-9),
            "seconds": running["seconds"],
            **{f"val_auc_{label}": float(a) for label, a in zip(MODEL_LABELS, aucs, strict=True)},
        }
        is_best = _better(mean_auc, state["best_auc"])
        row["best"] = is_best
        log.info(
            "epoch %d/%d: loss %.4f (MIL %.4f), val AUC %.4f, %.1f images/s%s",
            epoch + 1,
            options.epochs,
            row["loss"],
            row["loss_mil"],
            mean_auc,
            row["images_per_s"],
            " (best)" if is_best else "",
        )
        if is_best:
            state["best_auc"] = -math.inf if math.isnan(mean_auc) else mean_auc
            state["best_epoch"] = epoch + 1
            _save(
                {"model": _cpu_state(model), "epoch": epoch + 1, "val_auc": mean_auc},
                resume_dir / "best.pt",
            )
        state["log"] = [*state["log"], row]
        state["epoch"] = epoch + 1
        state["step"] = 0
        running = {"loss": 0.0, "mil": 0.0, "decoder": 0.0, "seconds": 0.0, "images": 0}
        acc = new_accumulator()
        checkpoint_now()
        last_save = time.monotonic()
        if stop_at_epoch_end and state["epoch"] < options.epochs:
            log.info("stopping after %d steps (checkpoint saved)", global_step)
            return {"stopped": True, "global_step": global_step}

    best = _load(resume_dir / "best.pt")
    payload = {
        "format": MODEL_FORMAT,
        "state_dict": best["model"],
        "model": msettings.to_dict(),
        "settings": json.loads(settings_json(resolved)),
        "experiment": resolved.get("experiment"),
        "seed": seed,
        "epoch": best["epoch"],
        "val_auc": best["val_auc"],
        "labels": list(MODEL_LABELS),
        "ablation": ablation_flags(resolved),
        "options": asdict(options),
        "images": manifest_image_settings(manifest),
        "initialisation": initialisation_facts(msettings.pretrained, msettings.backbone),
        "data": {"roots": dict(data_roots or {}), "counts": data_counts(data, index)},
    }
    _save(payload, out_dir / "model.pt")
    atomic_write_text(out_dir / "model_card.md", render_card(card_facts(payload)))
    atomic_write_text(out_dir / "train_log.csv", _log_csv(state["log"]))
    log.info(
        "best epoch %s (val AUC %s) -> %s", best["epoch"], best["val_auc"], out_dir / "model.pt"
    )
    return {
        "stopped": False,
        "best_epoch": best["epoch"],
        "val_auc": best["val_auc"],
        "global_step": global_step,
        "log": state["log"],
    }
