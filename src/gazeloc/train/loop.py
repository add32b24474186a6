"""The training loop: one experiment and seed, resumable, reproducible on the CPU.

Per run (docs/method.md#training): AMSGrad Adam (``lr``, coupled weight decay), batches drawn
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

Precision (:mod:`gazeloc.devices`): ``training.precision`` resolves to the effective
precision on the job's device (bf16 autocast only on a CUDA GPU of compute capability >= 8.0);
validation that picks the best epoch always runs in float32, as ``gazeloc evaluate`` does, so
``val_auc`` in ``model.pt`` is the metrics' value for that epoch. A checkpoint made at another
effective precision is a different run (ignored, with a warning); one made on another device
type at the same precision is resumed, with a warning (the weights then agree with an
uninterrupted run only closely), and the optimizer state is laid out like the parameters.

No host-device synchronisation in a step: batches come from pinned memory, the augmentation's
matrices reach the device in one non-blocking copy, the losses use Python scalars, and the loss
sums stay on the device; they are read back every :data:`POSTFIX_EVERY` steps (progress bar),
for checkpoints and for the log. One pool of data-loading workers serves every epoch and every
validation pass of a job (``persistent_workers``); the batch order still comes from
``(seed, epoch)`` alone. ``images_per_s`` leaves out the job's first :data:`WARMUP_STEPS`
steps (``torch.compile``, cuDNN autotuning, worker start-up), reported as ``warmup_seconds``.

Files of a run folder ``{out}/`` (docs/outputs.md#models):

* ``model.pt`` — the best epoch: ``state_dict``, ``model`` (architecture settings), ``settings``
  (the resolved experiment), ``experiment``, ``seed``, ``epoch`` (1-based), ``val_auc``,
  ``labels``, ``ablation``, ``options``, ``precision`` (the effective one: ``fp32`` or
  ``bf16``) and ``device_type`` (``cpu`` or ``cuda``) of the training job, ``images`` (the
  frame settings of the shards: size, DCT scaling, resampling — what ``gazeloc predict``
  repeats), ``initialisation`` (the encoder's starting weights and their SHA-256), ``data``
  (dataset roots, image counts by split), ``weights_sha256`` (the full sha256 of the pretrained
  weights file checked and loaded, or ``random``), ``gazeloc_version`` and ``git_commit``;
* ``model_card.md`` — those facts for a reader (:mod:`gazeloc.model.card`);
* ``train_log.csv`` — one row per epoch (:data:`LOG_COLUMNS` + per-label validation AUCs);
* ``resume/last.pt`` — model, optimizer, position (epoch, step), the best so far and the log;
  written after each epoch and every ``checkpoint_minutes`` within an epoch;
  ``resume/best.pt`` — the best weights so far. A checkpoint whose fingerprint (method settings,
  seed, input files' sizes and times, the pretrained weights) differs from the run's is ignored
  (logged). Removed once ``model.pt`` and ``train_log.csv`` are written, unless
  ``training.keep_checkpoints`` (a killed run keeps them and resumes from them).

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
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from gazeloc import weights as pretrained_weights
from gazeloc.datasets.sets import ImageLabelSet, collate
from gazeloc.datasets.shards import manifest_image_settings
from gazeloc.devices import autocast, configure_backends, pick_device, resolve_precision
from gazeloc.errors import NonFiniteLossError
from gazeloc.experiments import TrainingOptions, ablation_flags, method_settings, settings_json
from gazeloc.ioutil import atomic_path, atomic_write_text
from gazeloc.labels import MODEL_LABELS
from gazeloc.model import GazeLocNet, ModelSettings, build_model, image_probabilities
from gazeloc.model.card import card_facts, initialisation_facts, render_card
from gazeloc.model.losses import decoder_loss, mil_loss, total_loss
from gazeloc.numerics import numeric_facts
from gazeloc.provenance import provenance
from gazeloc.train.augment import augment_batch, sample_params
from gazeloc.train.data import TrainingData, build_data
from gazeloc.train.syncs import host_only

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "gazeloc-resume-2"
POSTFIX_EVERY = 10
"""Steps between progress-bar updates of the mean loss (each update waits for the device)."""
WARMUP_STEPS = 1
"""Steps at the start of a job left out of ``images_per_s`` (compile, autotuning)."""
CPU_CHANNELS_LAST = False
"""Whether ``training.channels_last`` also applies on the CPU (bench/bench_cpu_step.py)."""
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
    "warmup_seconds",
    "best",
)


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed from ``parts`` (stable across Python runs and machines)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _file_stamp(path: str | Path | None) -> list[Any] | None:
    if path is None:
        return None
    stat = Path(path).stat()
    return [Path(path).name, stat.st_size, stat.st_mtime_ns]


def fingerprint(resolved: dict[str, Any], seed: int, inputs: dict[str, Any]) -> str:
    """What a resume checkpoint must match: method settings (less ``precision``: the
    checkpoint's effective precision is compared apart), seed and input files."""
    settings = method_settings(resolved)
    settings["training"].pop("precision", None)
    payload = {
        "settings": settings,
        "seed": seed,
        "inputs": {k: _file_stamp(v) for k, v in sorted(inputs.items())},
    }
    return hashlib.sha256(settings_json(payload).encode()).hexdigest()


def _weights_sha(
    msettings: ModelSettings, path: str | Path | None, check: str | Path | None
) -> str:
    """The sha256 of the pretrained weights a run uses (``random`` for none), verified against
    the weights rule's record ``check`` and the expected hash; no file: the run stops here."""
    if msettings.pretrained == "none":
        return pretrained_weights.RANDOM
    spec = pretrained_weights.weights_spec(
        {
            "backbone": msettings.backbone,
            "pretrained": msettings.pretrained,
            "pretrained_sha256": msettings.pretrained_sha256,
        }
    )
    file = Path(path) if path is not None else spec.path
    if not file.is_file():
        raise pretrained_weights.WeightsError(file, pretrained_weights.missing_message(spec))
    sha = pretrained_weights.verify(file, spec.expect)
    if check is not None:
        recorded = pretrained_weights.read_record(check)["sha256"]
        if recorded != sha:
            raise pretrained_weights.WeightsError(
                file, f"sha256 {sha} differs from {recorded} recorded in {check} (file replaced?)"
            )
    return sha


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
    ``8G``, not thresholded) of annotation maps ``[A, K, S, S]`` (docs/method.md#training)."""
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
    with host_only():
        return bool(decoder_mask(batch).any())


def uses_channels_last(options: TrainingOptions, device: torch.device) -> bool:
    """Whether the model and the images are kept channels-last on ``device``."""
    return options.channels_last and (device.type == "cuda" or CPU_CHANNELS_LAST)


class Step:
    """One optimisation step's loss computation (shared by training and benchmarks).

    ``precision`` is the effective one (:func:`gazeloc.devices.resolve_precision`)."""

    def __init__(
        self,
        model: GazeLocNet,
        options: TrainingOptions,
        device: torch.device,
        *,
        precision: str = "fp32",
        binary_maps: bool = False,
        compiled: torch.nn.Module | None = None,
    ) -> None:
        self.model = model
        self.forward = compiled if compiled is not None else model
        self.options = options
        self.device = device
        self.precision = precision
        self.binary_maps = binary_maps
        self.settings = model.settings
        self.autocast = autocast(precision, device)
        self.channels_last = uses_channels_last(options, device)

    def prepare(
        self, batch: dict[str, torch.Tensor], params: Any | None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Move a batch to the device and augment it: ``images`` float in [0, 1], maps float.

        Every copy is non-blocking (from the loader's pinned memory on a GPU)."""
        dev = self.device
        images = batch["images"].to(dev, non_blocking=True).float().div_(255.0)
        maps = batch["maps"].to(dev, non_blocking=True).float()
        rest = {
            k: batch[k].to(dev, non_blocking=True)
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
        index = b["map_index"]
        annotation = torch.zeros((n, k, g, g), dtype=torch.bool, device=self.device)
        annotation.index_copy_(0, index, grid_t)
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
            target = torch.zeros_like(logits).index_copy_(0, index, dec_t.to(logits.dtype))
            dec = decoder_loss(
                logits,
                target,
                decoder_mask(b),
                binary=self.options.decoder_target == "binary",
                threshold=self.options.heatmap_threshold,
            )
        return total_loss(mil, dec, lambda_t=self.options.lambda_t), mil, dec


def train_step(
    step: Step,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    params: Any | None,
    sums: torch.Tensor | None = None,
    where: str = "training",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One optimisation step (forward, loss, backward, AMSGrad update); adds ``(L, L_I, L_T)``
    to the float64 device tensor ``sums`` when given. Nothing here waits for the device.

    A non-finite loss raises :class:`NonFiniteLossError` (naming ``where`` and the loss parts)
    before the optimizer step. On the CPU that is checked at every step (free there); on a GPU
    it would wait for the device, so there the loss sums are checked where they are read back
    anyway (:func:`check_finite_sums`: every :data:`POSTFIX_EVERY` steps, checkpoints, epoch
    ends), before any checkpoint or model is written."""
    loss, mil, dec = step.loss(batch, params)
    if loss.device.type == "cpu":
        with host_only():
            if not bool(torch.isfinite(loss.detach())):
                raise _non_finite(where, loss, mil, dec, "before the optimizer step")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if sums is not None:
        parts = [loss, mil, dec if dec is not None else torch.zeros_like(mil)]
        sums += torch.stack([x.detach().double() for x in parts])
    return loss, mil, dec


def _non_finite(where: str, loss: Any, mil: Any, dec: Any, when: str) -> NonFiniteLossError:
    def value(x: Any) -> float:
        return float(x.detach()) if torch.is_tensor(x) else float(x or 0.0)

    return NonFiniteLossError(
        f"{where}: the loss is not finite: total {value(loss):.6g}, MIL {value(mil):.6g}, "
        f"decoder {value(dec):.6g}; training stopped {when} (check training.lr, lambda_t, "
        "lambda_a and the inputs)"
    )


def check_finite_sums(running: dict[str, Any], where: str) -> None:
    """Raise :class:`NonFiniteLossError` when the read-back loss sums of an epoch are not
    finite (the GPU path's check, see :func:`train_step`)."""
    parts = (running["loss"], running["mil"], running["decoder"])
    if not all(np.isfinite(parts)):
        raise _non_finite(where, *parts, "at the loss read-back, before any checkpoint")


def match_optimizer_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor its parameter's memory layout (strides): a state
    saved from contiguous parameters and loaded beside channels-last ones (or the reverse)
    would otherwise keep the optimizer off its fast path."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param)
            if not state:
                continue
            for key, value in state.items():
                if (
                    torch.is_tensor(value)
                    and value.shape == param.shape
                    and value.stride() != param.stride()
                ):
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def make_optimizer(model: torch.nn.Module, options: TrainingOptions) -> torch.optim.Optimizer:
    """AMSGrad Adam with coupled (L2) weight decay, as the reference."""
    return torch.optim.Adam(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay, amsgrad=True
    )


class BatchSchedule:
    """A batch sampler whose batches are set before each pass (so that one DataLoader, and
    its persistent workers, serves every epoch and validation pass)."""

    def __init__(self, batches: list[list[int]] | None = None) -> None:
        self.batches = batches or []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)


class _Joined(Dataset):
    """The training items, then the validation items (indices offset by ``len(train)``)."""

    def __init__(self, train: Dataset, val: Dataset) -> None:
        self.train, self.val = train, val
        self.offset = len(train)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.offset + len(self.val)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.train[index] if index < self.offset else self.val[index - self.offset]


def _loader(
    dataset: Dataset,
    batches: list[list[int]] | BatchSchedule,
    workers: int,
    device: torch.device,
    *,
    persistent: bool = False,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
        persistent_workers=persistent and workers > 0,
        # the loader's own seed draw must not touch the global generator
        generator=torch.Generator().manual_seed(0),
    )


class RunLoader:
    """One DataLoader, and one pool of ``workers`` persistent processes, for a job's training
    epochs and validation passes."""

    def __init__(self, train: Dataset, val: Dataset, workers: int, device: torch.device) -> None:
        self.joined = _Joined(train, val)
        self.schedule = BatchSchedule()
        self.loader = _loader(self.joined, self.schedule, workers, device, persistent=True)

    def epoch(self, batches: list[list[int]]) -> Iterator[dict[str, torch.Tensor]]:
        """The training batches ``batches`` (indices into the training set), in order."""
        self.schedule.batches = batches
        return iter(self.loader)

    def validation(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """Every validation item, in order, in batches of ``batch_size``."""
        o, n = self.joined.offset, len(self.joined.val)  # type: ignore[arg-type]
        self.schedule.batches = [
            list(range(o + i, o + min(i + batch_size, n))) for i in range(0, n, batch_size)
        ]
        return iter(self.loader)


@torch.no_grad()
def predict(
    model: GazeLocNet,
    dataset: ImageLabelSet,
    *,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    batches: Iterable[dict[str, torch.Tensor]] | None = None,
) -> np.ndarray:
    """Image-level probabilities ``[N, K]`` (Eq. 1) of every item, in order (eval mode), in
    float32 (no autocast, as ``gazeloc evaluate``). ``batches``: the collated batches to use
    (e.g. :meth:`RunLoader.validation`) instead of a loader of its own. The probabilities stay
    on the device until the last batch (one read-back)."""
    was_training = model.training
    model.eval()
    if batches is None:
        order = [
            list(range(i, min(i + batch_size, len(dataset))))
            for i in range(0, len(dataset), batch_size)
        ]
        batches = _loader(dataset, order, workers, device)
    out = []
    for batch in batches:
        images = batch["images"].to(device, non_blocking=True).float().div_(255.0)
        grid_logits = model(images, decoder=False).grid_logits
        out.append(image_probabilities(grid_logits.float()))
    model.train(was_training)
    if not out:
        return np.zeros((0, len(MODEL_LABELS)), np.float32)
    return torch.cat(out).cpu().numpy()


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


def new_running() -> dict[str, Any]:
    """An epoch's running totals (losses, timed seconds and images, warm-up seconds)."""
    return {
        "loss": 0.0,
        "mil": 0.0,
        "decoder": 0.0,
        "seconds": 0.0,
        "images": 0,
        "warmup_seconds": 0.0,
    }


def _rate(running: dict[str, Any]) -> float:
    """Images per second over the timed steps (NaN when every step was warm-up)."""
    return running["images"] / running["seconds"] if running["images"] else math.nan


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


@dataclass
class _Run:
    """What the steps of one training job share: the set-up (settings, data, model, optimizer),
    the position and log (``state``, saved in checkpoints), the epoch's running totals and
    their device accumulator, and the job's own counters."""

    resolved: dict[str, Any]
    options: TrainingOptions
    msettings: ModelSettings
    device: torch.device
    precision: str
    seed: int
    name: str
    fingerprint: str
    weights_sha: str
    data: TrainingData
    n_batches: int
    model: GazeLocNet
    optimizer: torch.optim.Optimizer
    out_dir: Path
    index: str | Path
    manifest: str | Path
    data_roots: dict[str, str] | None
    progress: bool
    stop_after_steps: int | None
    on_step: Callable[[int], None] | None
    state: dict[str, Any] = field(
        default_factory=lambda: {
            "epoch": 0,
            "step": 0,
            "best_auc": None,
            "best_epoch": None,
            "log": [],
        }
    )
    running: dict[str, Any] = field(default_factory=new_running)
    step_fn: Step | None = None
    loader: RunLoader | None = None
    acc: torch.Tensor | None = None
    job_steps: int = 0  # steps run by this process (the first WARMUP_STEPS are not timed)
    global_step: int = 0
    last_save: float = 0.0

    @property
    def resume_dir(self) -> Path:
        return self.out_dir / "resume"

    @property
    def last(self) -> Path:
        return self.resume_dir / "last.pt"

    @property
    def stop_reached(self) -> bool:
        return self.stop_after_steps is not None and self.global_step >= self.stop_after_steps

    def new_accumulator(self) -> torch.Tensor:
        """Loss sums of the epoch on the device (float64: exact across a resume); read back
        only for the progress bar, checkpoints and the log, so steps do not wait for it."""
        values = [self.running["loss"], self.running["mil"], self.running["decoder"]]
        return torch.tensor(values, dtype=torch.float64, device=self.device)

    def sync_running(self) -> None:
        assert self.acc is not None
        self.running["loss"], self.running["mil"], self.running["decoder"] = self.acc.tolist()
        check_finite_sums(
            self.running, f"{self.name} seed {self.seed}: by step {self.state['step']}"
        )

    def checkpoint_now(self) -> None:
        self.sync_running()
        _save(
            {
                "format": CHECKPOINT_FORMAT,
                "fingerprint": self.fingerprint,
                "precision": self.precision,
                "device_type": self.device.type,
                "model": _cpu_state(self.model),
                "optimizer": self.optimizer.state_dict(),
                "state": self.state,
                "running": self.running,
                "threads": torch.get_num_threads(),
                "device": self.device.type,
            },
            self.last,
        )


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
    weights: str | Path | None = None,
    weights_check: str | Path | None = None,
    data_roots: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train (or resume) one run; write ``model.pt``, ``model_card.md`` and ``train_log.csv``
    under ``out_dir``. ``data_roots`` (dataset name → folder) is recorded in the card.

    ``weights``: the pretrained encoder file (default: where ``model.pretrained`` says);
    ``weights_check``: the weights rule's record of it (its sha256 must still match).

    ``stop_after_steps`` saves a resume checkpoint after that many steps of the whole run and
    returns early (what a kill right after a checkpoint leaves behind); ``on_step(global_step)``
    is called after every step (tests raise from it to simulate a kill). Returns a summary.

    The steps: :func:`_set_up` (settings, seeds, data, model, optimizer), :func:`_resume`
    (from ``resume/last.pt`` when it belongs to this run), :func:`_start` (the step function
    and the loader), then per epoch :func:`_train_epoch` and :func:`_end_epoch` (validation,
    the best epoch, the checkpoint), and :func:`_write_outputs`.
    """
    run = _set_up(
        resolved,
        index=index,
        manifest=manifest,
        out_dir=Path(out_dir),
        seed=seed,
        heatmaps=heatmaps,
        ellipses=ellipses,
        data=data,
        weights=weights,
        weights_check=weights_check,
        data_roots=data_roots,
        progress=progress,
        stop_after_steps=stop_after_steps,
        on_step=on_step,
    )
    _resume(run)
    _start(run)
    while run.state["epoch"] < run.options.epochs:
        epoch = run.state["epoch"]
        if _train_epoch(run, epoch):
            log.info("stopping after %d steps (checkpoint saved)", run.global_step)
            return {"stopped": True, "global_step": run.global_step}
        stop_at_epoch_end = run.stop_reached
        _end_epoch(run, epoch)
        if stop_at_epoch_end and run.state["epoch"] < run.options.epochs:
            log.info("stopping after %d steps (checkpoint saved)", run.global_step)
            return {"stopped": True, "global_step": run.global_step}
    return _write_outputs(run)


def _set_up(
    resolved: dict[str, Any],
    *,
    index: str | Path,
    manifest: str | Path,
    out_dir: Path,
    seed: int,
    heatmaps: str | Path | None,
    ellipses: str | Path | None,
    data: TrainingData | None,
    weights: str | Path | None,
    weights_check: str | Path | None,
    **job: Any,
) -> _Run:
    """Settings, device and precision, the resume fingerprint, the seeds, the data, the model
    and its optimizer, in that order. ``job``: the remaining :class:`_Run` fields
    (``data_roots``, ``progress``, ``stop_after_steps``, ``on_step``)."""
    options = TrainingOptions.from_dict(resolved.get("training", {}))
    msettings = model_settings(resolved)
    device = pick_device(options.device)
    precision = resolve_precision(options.precision, device)
    log.info(
        "device %s, precision %s (training.precision %s)", device, precision, options.precision
    )
    weights_sha = _weights_sha(msettings, weights, weights_check)
    inputs = {"index": index, "manifest": manifest, "heatmaps": heatmaps, "ellipses": ellipses}
    fp = fingerprint({**resolved, "weights_sha256": weights_sha}, seed, inputs)
    # global generators too, in case a library draws from them (the loop itself does not)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)
    configure_backends(device)

    data, n_batches = _training_data(
        resolved, options, data, index, manifest, heatmaps, ellipses, seed
    )
    model = _initial_model(msettings, options, device, seed, weights, weights_sha)
    return _Run(
        resolved=resolved,
        options=options,
        msettings=msettings,
        device=device,
        precision=precision,
        seed=seed,
        name=resolved.get("experiment", "train"),
        fingerprint=fp,
        weights_sha=weights_sha,
        data=data,
        n_batches=n_batches,
        model=model,
        optimizer=make_optimizer(model, options),
        out_dir=out_dir,
        index=index,
        manifest=manifest,
        **job,
    )


def _training_data(
    resolved: dict[str, Any],
    options: TrainingOptions,
    data: TrainingData | None,
    index: str | Path,
    manifest: str | Path,
    heatmaps: str | Path | None,
    ellipses: str | Path | None,
    seed: int,
) -> tuple[TrainingData, int]:
    """The run's data (``data`` when given) and its number of full batches per epoch (a
    config message when there is none)."""
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
        from gazeloc.config import ConfigError

        raise ConfigError(
            f"config key 'training.batch_size' = {options.batch_size} is larger than the "
            f"{len(data.train)} training images of {resolved.get('experiment', 'this run')} "
            f"({index}): no full batch to train on; lower training.batch_size or use more data"
        )
    return data, n_batches


def _initial_model(
    msettings: ModelSettings,
    options: TrainingOptions,
    device: torch.device,
    seed: int,
    weights: str | Path | None,
    weights_sha: str,
) -> GazeLocNet:
    """The model initialised from ``(seed, "init")`` (and the checked pretrained weights) on
    ``device``, channels-last where :func:`uses_channels_last` says."""
    model = build_model(
        msettings, seed=derived_seed(seed, "init"), weights_path=weights, weights_sha256=None
    ).to(device)
    if model.weights_sha256 != weights_sha:  # the file changed while this run started
        raise pretrained_weights.WeightsError(
            weights or "weights", f"sha256 {model.weights_sha256} != checked {weights_sha}"
        )
    if uses_channels_last(options, device):
        model = model.to(memory_format=torch.channels_last)
    return model


def _resume(run: _Run) -> None:
    """Continue from ``resume/last.pt`` when it is this run's (same fingerprint and effective
    precision): weights, optimizer, position, log and running totals. Another run's
    checkpoint is ignored with a warning."""
    last, device, precision = run.last, run.device, run.precision
    if not last.is_file():
        return
    checkpoint = _load(last)
    if checkpoint.get("format") != CHECKPOINT_FORMAT or checkpoint.get("fingerprint") != (
        run.fingerprint
    ):
        log.warning("ignoring %s: made with other settings or inputs; starting afresh", last)
        return
    if checkpoint.get("precision") != precision:
        log.warning(
            "ignoring %s: trained in %s on %s, but this job trains in %s on %s (another "
            "effective training.precision is another run); starting afresh",
            last,
            checkpoint.get("precision"),
            checkpoint.get("device_type"),
            precision,
            device.type,
        )
        return
    if checkpoint.get("device_type") != device.type:
        log.warning(
            "resuming on %s a run checkpointed on %s (both %s): its weights will be "
            "close to, not identical with, those of an uninterrupted run",
            device.type,
            checkpoint.get("device_type"),
            precision,
        )
    run.model.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    match_optimizer_layout(run.optimizer)
    run.state = checkpoint["state"]
    run.running = {**new_running(), **checkpoint["running"]}
    log.info(
        "resuming from %s at epoch %d, step %d", last, run.state["epoch"] + 1, run.state["step"]
    )
    if warn_thread_change(last, checkpoint, device) and run.options.strict_resume:
        from gazeloc.config import ConfigError

        raise ConfigError(
            f"{last} was written with {checkpoint.get('threads')} CPU thread(s) on "
            f"{checkpoint.get('device')}, this job has {torch.get_num_threads()} on "
            f"{device.type}, and training.strict_resume is true: run the job with its "
            "original threads and device, or set strict_resume: false to resume anyway"
        )


def _start(run: _Run) -> None:
    """The step function (compiled when ``training.compile``), the job's loader and its
    position in the whole run."""
    compiled = torch.compile(run.model) if run.options.compile else None
    run.step_fn = Step(
        run.model,
        run.options,
        run.device,
        precision=run.precision,
        binary_maps=run.data.binary_maps,
        compiled=compiled,
    )
    run.loader = RunLoader(run.data.train, run.data.val, run.options.workers, run.device)
    run.global_step = run.state["epoch"] * run.n_batches + run.state["step"]
    run.last_save = time.monotonic()


def _train_epoch(run: _Run, epoch: int) -> bool:
    """The remaining steps of ``epoch`` (0-based), with checkpoints every
    ``checkpoint_minutes``; True when ``stop_after_steps`` stopped it before its end (a
    checkpoint is saved)."""
    from tqdm import tqdm

    options, state = run.options, run.state
    assert run.loader is not None and run.step_fn is not None
    batches = epoch_batches(len(run.data.train), options.batch_size, run.seed, epoch)
    run.model.train()
    loader = run.loader.epoch(batches[state["step"] :])
    bar = tqdm(
        total=run.n_batches,
        initial=state["step"],
        desc=f"{run.name} seed {run.seed} epoch {epoch + 1}/{options.epochs}",
        unit="step",
        disable=not run.progress,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        file=sys.stderr,
    )
    run.acc = run.new_accumulator()
    tick = time.perf_counter()
    for batch in loader:
        step = state["step"]
        params = None
        if options.augment:
            generator = torch.Generator().manual_seed(
                derived_seed(run.seed, "augment", epoch, step)
            )
            params = sample_params(len(batch["images"]), run.msettings.input_size, generator)
        where = f"{run.name} seed {run.seed}: step {step} (epoch {epoch + 1})"
        train_step(run.step_fn, run.optimizer, batch, params, run.acc, where=where)
        tick = _count_step(run, bar, len(batch["images"]), tick)
        if run.on_step is not None:
            run.on_step(run.global_step)
        due = time.monotonic() - run.last_save > 60 * options.checkpoint_minutes
        stop = run.stop_reached
        if (due or stop) and state["step"] < run.n_batches:
            run.checkpoint_now()
            run.last_save = time.monotonic()
        if stop:
            break
    bar.close()
    run.sync_running()
    return run.stop_reached and state["step"] < run.n_batches


def _count_step(run: _Run, bar: Any, images: int, tick: float) -> float:
    """Book a finished step of ``images`` images begun at ``tick``: timing (warm-up apart),
    position, progress bar (the mean loss every :data:`POSTFIX_EVERY` steps). Returns the
    next step's start."""
    now = time.perf_counter()
    run.job_steps += 1
    if run.job_steps > WARMUP_STEPS:
        run.running["seconds"] += now - tick
        run.running["images"] += images
    else:
        run.running["warmup_seconds"] += now - tick
    run.state["step"] += 1
    run.global_step += 1
    bar.update(1)
    step = run.state["step"]
    if step % POSTFIX_EVERY == 0 or step == run.n_batches:
        run.sync_running()
        bar.set_postfix(
            loss=f"{run.running['loss'] / step:.4g}",
            img_s=f"{_rate(run.running):.1f}",
        )
    return now


def _validate(run: _Run) -> tuple[np.ndarray, float]:
    """Per-label validation AUCs on MIMIC val (float32, through the job's loader) and their
    mean over the labels that have one (NaN without any)."""
    data, options = run.data, run.options
    assert run.loader is not None
    aucs = (
        label_aucs(
            predict(
                run.model,
                data.val,
                batch_size=options.batch_size,
                device=run.device,
                batches=run.loader.validation(options.batch_size),
            ),
            data.val.labels,
            data.val.known,
        )
        if len(data.val)
        else np.full(len(MODEL_LABELS), np.nan)
    )
    valid = aucs[~np.isnan(aucs)]
    return aucs, float(valid.mean()) if valid.size else math.nan


def _end_epoch(run: _Run, epoch: int) -> None:
    """Validate ``epoch`` (0-based), log its row, keep its weights as ``resume/best.pt`` when
    it is the best so far (ties: the later epoch), then checkpoint the start of the next."""
    aucs, mean_auc = _validate(run)
    state, running, steps = run.state, run.running, run.state["step"]
    row = {
        "epoch": epoch + 1,
        "steps": steps,
        "loss": running["loss"] / steps,
        "loss_mil": running["mil"] / steps,
        "loss_decoder": running["decoder"] / steps if run.msettings.decoder else "",
        "val_auc": mean_auc,
        "images_per_s": _rate(running),
        "seconds": running["seconds"],
        "warmup_seconds": running["warmup_seconds"],
        **{f"val_auc_{label}": float(a) for label, a in zip(MODEL_LABELS, aucs, strict=True)},
    }
    is_best = _better(mean_auc, state["best_auc"])
    row["best"] = is_best
    log.info(
        "epoch %d/%d: loss %.4f (MIL %.4f), val AUC %.4f, %.1f images/s%s",
        epoch + 1,
        run.options.epochs,
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
            {"model": _cpu_state(run.model), "epoch": epoch + 1, "val_auc": mean_auc},
            run.resume_dir / "best.pt",
        )
    state["log"] = [*state["log"], row]
    state["epoch"] = epoch + 1
    state["step"] = 0
    run.running = new_running()
    run.acc = run.new_accumulator()
    run.checkpoint_now()
    run.last_save = time.monotonic()


def _write_outputs(run: _Run) -> dict[str, Any]:
    """``model.pt`` (the best epoch with the run's facts), ``model_card.md`` and
    ``train_log.csv``; removes ``resume/`` unless ``training.keep_checkpoints``."""
    resolved, msettings, options = run.resolved, run.msettings, run.options
    best = _load(run.resume_dir / "best.pt")
    payload = {
        "format": MODEL_FORMAT,
        "state_dict": best["model"],
        "model": msettings.to_dict(),
        "settings": json.loads(settings_json(resolved)),
        "experiment": resolved.get("experiment"),
        "seed": run.seed,
        "epoch": best["epoch"],
        "val_auc": best["val_auc"],
        "labels": list(MODEL_LABELS),
        "ablation": ablation_flags(resolved),
        "options": asdict(options),
        "precision": run.precision,
        "device_type": run.device.type,
        "images": manifest_image_settings(run.manifest),
        "initialisation": initialisation_facts(msettings.pretrained, msettings.backbone),
        "data": {"roots": dict(run.data_roots or {}), "counts": data_counts(run.data, run.index)},
        "weights_sha256": run.weights_sha,
        "numerics": numeric_facts(run.device.type),
        **provenance(),
    }
    out_dir = run.out_dir
    _save(payload, out_dir / "model.pt")
    atomic_write_text(out_dir / "model_card.md", render_card(card_facts(payload)))
    atomic_write_text(out_dir / "train_log.csv", _log_csv(run.state["log"]))
    if not options.keep_checkpoints:
        shutil.rmtree(run.resume_dir, ignore_errors=True)
        log.info("removed %s (training.keep_checkpoints: false)", run.resume_dir)
    log.info(
        "best epoch %s (val AUC %s) -> %s", best["epoch"], best["val_auc"], out_dir / "model.pt"
    )
    return {
        "stopped": False,
        "best_epoch": best["epoch"],
        "val_auc": best["val_auc"],
        "global_step": run.global_step,
        "log": run.state["log"],
    }
