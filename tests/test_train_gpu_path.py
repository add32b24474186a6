"""The GPU path exercised on the CPU: precision resolution with a mocked compute capability,
no host-device synchronisation in a training step, fp32 epoch selection (``val_auc`` equals the
evaluation's value), persistent loader workers with resume equality, the effective precision
and device type in checkpoints and ``model.pt``, the optimizer state's memory layout, and
``load_model(map_location=...)``."""

from __future__ import annotations

import csv
import logging
import shutil

import numpy as np
import pytest
import torch
from test_train_inputs import make_inputs
from test_train_inputs import resolved as _resolved

from gazeloc import devices as device_mod
from gazeloc.devices import autocast, resolve_precision
from gazeloc.experiments import TrainingOptions
from gazeloc.model import GazeLocNet, ModelSettings, build_model, load_model
from gazeloc.train import loop
from gazeloc.train.augment import sample_params
from gazeloc.train.loop import Step, make_optimizer, match_optimizer_layout, train, train_step
from gazeloc.train.syncs import SyncCounter, optimizer_step_counters

_ITEM = torch.Tensor.item
CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def resolved(annotations: str = "et", **training) -> dict:
    """The tiny experiment, keeping its resume checkpoints (these tests read them)."""
    return _resolved(annotations, **{"keep_checkpoints": True, **training})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("gpu_path"))


def _train(inputs, out, settings=None, **kw):
    return train(
        settings or resolved("et"),
        index=inputs.index,
        manifest=inputs.manifest,
        heatmaps=inputs.heatmaps,
        out_dir=out,
        seed=3,
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    _train(inputs, out)
    return out


def _state(path, key):
    return torch.load(path, map_location="cpu", weights_only=True)[key]


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- precision ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "capability", "expected", "warns"),
    [
        ("auto", (9, 0), "bf16", False),  # H100
        ("auto", (8, 0), "bf16", False),  # A100
        ("auto", (7, 0), "fp32", False),  # V100
        ("auto", (7, 5), "fp32", False),  # T4
        ("bf16", (8, 6), "bf16", False),
        ("bf16", (7, 0), "fp32", True),
        ("bf16", (6, 0), "fp32", True),  # P100
        ("fp32", (9, 0), "fp32", False),
        ("fp32", (7, 0), "fp32", False),
    ],
)
def test_precision_on_a_gpu_follows_its_compute_capability(
    monkeypatch, caplog, requested, capability, expected, warns
):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    with caplog.at_level(logging.INFO, logger=device_mod.__name__):
        assert resolve_precision(requested, CUDA) == expected
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) == warns
    if warns:
        assert "compute capability" in warnings[0].getMessage()


@pytest.mark.parametrize("requested", ["auto", "fp32", "bf16"])
def test_the_cpu_always_trains_in_fp32(caplog, requested):
    with caplog.at_level(logging.WARNING, logger=device_mod.__name__):
        assert resolve_precision(requested, CPU) == "fp32"
    assert ("training in fp32" in caplog.text) == (requested == "bf16")


def test_precision_is_validated():
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="precision"):
        TrainingOptions(precision="half")
    with pytest.raises(ValueError, match="effective precision"):
        autocast("auto", CPU)


def test_bf16_autocast_is_bfloat16():
    with autocast("bf16", CPU):
        out = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert out.dtype == torch.bfloat16
    with autocast("fp32", CPU):
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == torch.float32


# --- no host-device synchronisation in a step -----------------------------------------------


def _batch(size=32, n=4, annotated=(0, 2)):
    g = torch.Generator().manual_seed(0)
    flags = torch.zeros(n, dtype=torch.bool)
    flags[list(annotated)] = True
    maps = torch.rand(len(annotated), 10, size, size, generator=g).half()
    return {
        "images": torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g),
        "labels": (torch.rand(n, 10, generator=g) > 0.5).float(),
        "known": torch.ones(n, 10, dtype=torch.bool),
        "annotated": flags,
        "maps": maps,
        "map_index": torch.tensor(list(annotated)),
    }


@pytest.mark.parametrize("balanced", [True, False])  # false: Table 7 ablation rows 1-2
@pytest.mark.parametrize("decoder_target", ["soft", "binary"])
def test_a_training_step_never_waits_for_the_device(balanced, decoder_target):
    settings = ModelSettings(backbone="resnet18", pretrained="none", input_size=32)
    model = build_model(settings, seed=0)
    options = TrainingOptions(batch_size=4, balanced=balanced, decoder_target=decoder_target)
    step = Step(model, options, CPU)
    optimizer = make_optimizer(model, options)
    sums = torch.zeros(3, dtype=torch.float64)
    batch = _batch()
    params = sample_params(4, 32, torch.Generator().manual_seed(1))
    train_step(step, optimizer, batch, params, sums)  # the optimizer's state exists from here

    with SyncCounter(ignore=optimizer_step_counters(optimizer)) as counter:
        train_step(step, optimizer, batch, params, sums)
        assert counter.calls == []
        float(sums[0])  # the counter sees a read-back (the loop's documented one)
        batch["images"].to(CPU)
        torch.tensor([1.0], device=CPU)
    assert counter.calls == ["Tensor.__float__", "Tensor.to (blocking)", "torch.tensor"]
    assert torch.Tensor.item is _ITEM  # restored


def test_augmentation_needs_the_cpu_copy_of_map_index():
    from gazeloc.train.augment import batch_matrices

    params = sample_params(2, 16, torch.Generator().manual_seed(0))
    images, maps = batch_matrices(params, torch.tensor([1]), 16, CPU)
    assert images.shape == (2, 2, 3) and torch.equal(maps[0], images[1])
    with pytest.raises(ValueError, match="CPU copy"):
        batch_matrices(params, torch.tensor([1], device="meta"), 16, CPU)


# --- fp32 epoch selection --------------------------------------------------------------------


def test_epoch_selection_runs_in_fp32_and_matches_evaluate(inputs, tmp_path, monkeypatch):
    """Steps in bf16 (forced on the CPU, as on a GPU with bf16), validation in fp32: the
    ``val_auc`` of model.pt is what ``gazeloc evaluate`` computes for the same weights."""
    from gazeloc.evaluate.run import EvalOptions, mimic_auc

    monkeypatch.setattr(loop, "resolve_precision", lambda requested, device: "bf16")
    modes = []
    original = GazeLocNet.forward

    def forward(self, images, *args, **kwargs):
        modes.append((self.training, torch.is_autocast_enabled("cpu")))
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(GazeLocNet, "forward", forward)
    _train(inputs, tmp_path, settings=resolved("et", precision="bf16"))
    assert {m for m in modes if m[0]} == {(True, True)}  # training steps: bf16 autocast
    assert {m for m in modes if not m[0]} == {(False, False)}  # validation: fp32
    monkeypatch.setattr(GazeLocNet, "forward", original)
    model, meta = load_model(tmp_path / "model.pt")
    assert meta["precision"] == "bf16" and meta["device_type"] == "cpu"
    auc = mimic_auc(
        model, inputs.index, inputs.manifest, "val", EvalOptions(progress=False), CPU
    ).auc
    assert float(np.nanmean(auc)) == pytest.approx(meta["val_auc"], abs=1e-12)


# --- resume: persistent workers, precision, device type ---------------------------------------


def test_persistent_workers_resume_gives_identical_weights(
    inputs, reference, tmp_path, monkeypatch
):
    """One worker pool per job (every epoch and validation pass), and a run resumed with
    workers ends with the weights of the uninterrupted run without workers."""
    from torch.utils.data import dataloader

    pools = []
    original = dataloader._MultiProcessingDataLoaderIter.__init__

    def init(self, *args, **kwargs):
        pools.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(dataloader._MultiProcessingDataLoaderIter, "__init__", init)
    settings = resolved("et", workers=1)
    first = _train(inputs, tmp_path, settings=settings, stop_after_steps=3)
    assert first["stopped"] and len(pools) == 1
    _train(inputs, tmp_path, settings=settings)  # rest of epoch 1, validation, epoch 2, validation
    assert len(pools) == 2
    _same(_state(tmp_path / "model.pt", "state_dict"), _state(reference / "model.pt", "state_dict"))
    _same(
        _state(tmp_path / "resume" / "last.pt", "model"),
        _state(reference / "resume" / "last.pt", "model"),
    )
    rows = lambda p: [(r["loss"], r["val_auc"]) for r in csv.DictReader(open(p))]  # noqa: E731
    assert rows(tmp_path / "train_log.csv") == rows(reference / "train_log.csv")


def test_model_pt_and_checkpoint_record_precision_and_device(reference):
    meta = load_model(reference / "model.pt")[1]
    assert (meta["precision"], meta["device_type"]) == ("fp32", "cpu")
    last = torch.load(reference / "resume" / "last.pt", map_location="cpu", weights_only=True)
    assert (last["precision"], last["device_type"]) == ("fp32", "cpu")


def _edited_checkpoint(reference, tmp_path, **changes):
    shutil.copytree(reference / "resume", tmp_path / "resume")
    path = tmp_path / "resume" / "last.pt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint.update(changes)
    torch.save(checkpoint, path)


def test_another_effective_precision_is_another_run(inputs, reference, tmp_path, caplog):
    _edited_checkpoint(reference, tmp_path, precision="bf16", device_type="cuda")
    steps = []
    with caplog.at_level(logging.WARNING):
        _train(inputs, tmp_path, on_step=steps.append)
    assert steps == list(range(1, 9))  # trained afresh
    assert "trained in bf16 on cuda, but this job trains in fp32 on cpu" in caplog.text


def test_another_device_type_at_the_same_precision_resumes(inputs, reference, tmp_path, caplog):
    _edited_checkpoint(reference, tmp_path, device_type="cuda")

    def never(step):
        raise AssertionError("trained again")

    with caplog.at_level(logging.WARNING):
        _train(inputs, tmp_path, on_step=never)  # a finished run: only the outputs are rewritten
    assert "resuming on cpu a run checkpointed on cuda" in caplog.text
    _same(_state(tmp_path / "model.pt", "state_dict"), _state(reference / "model.pt", "state_dict"))


def test_configured_precision_with_the_same_effective_one_keeps_the_checkpoint(
    inputs, reference, tmp_path
):
    """On the CPU auto and fp32 are both fp32: the rerun Snakemake makes for the changed key
    finds the finished checkpoint and only rewrites the outputs."""
    shutil.copytree(reference / "resume", tmp_path / "resume")

    def never(step):
        raise AssertionError("trained again")

    _train(inputs, tmp_path, settings=resolved("et", precision="fp32"), on_step=never)


def test_warm_up_is_left_out_of_images_per_s(reference):
    rows = list(csv.DictReader(open(reference / "train_log.csv")))
    first, second = rows
    assert float(first["warmup_seconds"]) > 0 and float(second["warmup_seconds"]) == 0
    # epoch 1 times steps 2-4 (12 images), epoch 2 all 4 steps (16 images)
    assert float(first["images_per_s"]) * float(first["seconds"]) == pytest.approx(12)
    assert float(second["images_per_s"]) * float(second["seconds"]) == pytest.approx(16)


# --- optimizer layout, load_model -------------------------------------------------------------


def test_optimizer_state_follows_the_parameters_layout():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 4, 3)
    optimizer = torch.optim.Adam(net.parameters(), amsgrad=True)
    net(torch.rand(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    saved = optimizer.state_dict()
    moved = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    resumed = torch.optim.Adam(moved.parameters(), amsgrad=True)
    resumed.load_state_dict(saved)
    weight = moved.weight
    assert resumed.state[weight]["exp_avg"].stride() != weight.stride()  # what torch leaves
    before = {k: v.clone() for k, v in resumed.state[weight].items()}
    match_optimizer_layout(resumed)
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        assert resumed.state[weight][key].stride() == weight.stride()
        assert torch.equal(resumed.state[weight][key], before[key])
    assert torch.equal(resumed.state[weight]["step"], before["step"])


def test_load_model_honours_map_location(reference):
    model, meta = load_model(reference / "model.pt", map_location="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert meta["experiment"] == "test_et"
    model, _ = load_model(reference / "model.pt")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
