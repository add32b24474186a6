"""Training loop: overfitting a small batch, resume after a stop or a kill (identical weights),
checkpoint round trip, stale checkpoints, the CLI."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from test_train_inputs import make_inputs, resolved

import gazeloc
from gazeloc.cli import main as cli_main
from gazeloc.datasets.sets import collate
from gazeloc.experiments import TrainingOptions
from gazeloc.model import load_model
from gazeloc.train import loop
from gazeloc.train.data import build_data
from gazeloc.train.loop import Step, epoch_batches, label_aucs, make_optimizer, predict, train


class Killed(Exception):
    pass


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine two spinning threads run 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("train_loop"))


def _train(inputs, out, settings=None, **kw):
    """Keeps the resume checkpoints (the tests compare them) unless ``settings`` say."""
    return train(
        settings or resolved("et", keep_checkpoints=True),
        index=inputs.index,
        manifest=inputs.manifest,
        heatmaps=inputs.heatmaps,
        out_dir=out,
        seed=3,
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def uninterrupted(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_a")
    summary = _train(inputs, out)
    return out, summary


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _losses(path):
    with open(path) as handle:
        return [
            (r["epoch"], r["loss"], r["loss_mil"], r["val_auc"]) for r in csv.DictReader(handle)
        ]


def test_uninterrupted_outputs(uninterrupted):
    out, summary = uninterrupted
    assert not summary["stopped"] and summary["global_step"] == 8  # 18 items, batch 4, 2 epochs
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # per-epoch means: epoch 2 does not carry epoch 1's sums
    assert float(rows[1]["loss"]) < 1.5 * float(rows[0]["loss"])
    assert {"loss", "loss_mil", "loss_decoder", "val_auc", "images_per_s", "val_auc_edema"} <= set(
        rows[0]
    )
    assert (out / "resume" / "last.pt").is_file() and (out / "resume" / "best.pt").is_file()


def test_resume_after_stop_gives_identical_weights(inputs, uninterrupted, tmp_path):
    reference, _ = uninterrupted
    first = _train(inputs, tmp_path, stop_after_steps=3)  # mid-epoch checkpoint, then stop
    assert first["stopped"] and not (tmp_path / "model.pt").exists()
    assert _weights(tmp_path / "resume" / "last.pt")["state"]["step"] == 3
    # resumed without keep_checkpoints: the checkpoints go once model.pt is written
    second = _train(inputs, tmp_path, settings=resolved("et"))
    assert not second["stopped"] and second["global_step"] == 8
    assert not (tmp_path / "resume").exists()
    _assert_same_state(
        _weights(tmp_path / "model.pt")["state_dict"],
        _weights(reference / "model.pt")["state_dict"],
    )
    assert _losses(tmp_path / "train_log.csv") == _losses(reference / "train_log.csv")


def test_resume_after_kill_gives_identical_weights(inputs, uninterrupted, tmp_path):
    reference, _ = uninterrupted

    def kill(step: int) -> None:
        if step == 6:  # in epoch 2, after the epoch-1 checkpoint; steps 5-6 are lost
            raise Killed

    with pytest.raises(Killed):
        _train(inputs, tmp_path, on_step=kill)
    assert _weights(tmp_path / "resume" / "last.pt")["state"]["epoch"] == 1
    _train(inputs, tmp_path)
    _assert_same_state(
        _weights(tmp_path / "resume" / "last.pt")["model"],
        _weights(reference / "resume" / "last.pt")["model"],
    )
    assert _losses(tmp_path / "train_log.csv") == _losses(reference / "train_log.csv")


def test_finished_run_reruns_without_training(inputs, uninterrupted, tmp_path):
    reference, _ = uninterrupted
    import shutil

    shutil.copytree(reference / "resume", tmp_path / "resume")

    def never(step: int) -> None:
        raise AssertionError("trained again")

    # a runtime-only change (workers, checkpoint interval) keeps the checkpoint
    settings = resolved("et", checkpoint_minutes=5.0)
    _train(inputs, tmp_path, settings=settings, on_step=never)
    _assert_same_state(
        _weights(tmp_path / "model.pt")["state_dict"],
        _weights(reference / "model.pt")["state_dict"],
    )


def test_changed_settings_ignore_the_checkpoint(inputs, uninterrupted, tmp_path, caplog):
    reference, _ = uninterrupted
    import shutil

    shutil.copytree(reference / "resume", tmp_path / "resume")
    steps = []
    _train(inputs, tmp_path, settings=resolved("et", epochs=1, lr=5e-4), on_step=steps.append)
    assert steps == [1, 2, 3, 4] and "ignoring" in caplog.text


def test_configured_weights_are_used_and_recorded(inputs, tmp_path):
    """A state dict registered as model.pretrained with its sha256: loaded, its full sha256 in
    model.pt and load_model's metadata; another sha256 refuses it before any step."""
    import torchvision

    from gazeloc.weights import WeightsError, check_record, sha256_file

    torch.manual_seed(11)
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, tmp_path / "encoder.pth")
    sha = sha256_file(tmp_path / "encoder.pth")
    record = tmp_path / "check.json"
    record.write_text(json.dumps(check_record(tmp_path / "encoder.pth", sha, "x")))
    settings = resolved("et", epochs=1)
    settings["model"].update(pretrained=str(tmp_path / "encoder.pth"), pretrained_sha256=sha)
    seen = []
    real_build = loop.build_model

    def build(*args, **kw):
        model = real_build(*args, **kw)
        seen.append(model.encoder.conv1.weight.detach().clone())
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "build_model", build)
        _train(inputs, tmp_path / "run", settings=settings, weights_check=record)
    assert torch.equal(seen[0], state["conv1.weight"])
    _, meta = load_model(tmp_path / "run" / "model.pt")
    assert meta["weights_sha256"] == sha
    assert meta["gazeloc_version"] == gazeloc.__version__ and meta["git_commit"]
    settings["model"]["pretrained_sha256"] = "0" * 64
    steps = []
    with pytest.raises(WeightsError, match="does not match"):
        _train(inputs, tmp_path / "other", settings=settings, on_step=steps.append)
    assert steps == [] and not (tmp_path / "other" / "model.pt").exists()


def test_model_pt_round_trip(inputs, uninterrupted):
    out, summary = uninterrupted
    model, meta = load_model(out / "model.pt")
    assert meta["weights_sha256"] == "random"
    assert meta["experiment"] == "test_et" and meta["seed"] == 3
    assert meta["epoch"] == summary["best_epoch"] and meta["model"]["backbone"] == "resnet18"
    assert meta["ablation"] == {"lsh": True, "brn": True, "mra": True, "mtl": True}
    data = build_data(
        resolved("et"), index=inputs.index, manifest=inputs.manifest, heatmaps=inputs.heatmaps
    )
    scores = predict(model, data.val, batch_size=4, device=torch.device("cpu"))
    aucs = label_aucs(scores, data.val.labels, data.val.known)
    assert np.nanmean(aucs) == pytest.approx(meta["val_auc"], rel=1e-6)


def test_epoch_batches_are_seeded_and_drop_last():
    a = epoch_batches(18, 4, seed=3, epoch=0)
    assert len(a) == 4 and all(len(b) == 4 for b in a)
    assert a == epoch_batches(18, 4, seed=3, epoch=0)
    assert a != epoch_batches(18, 4, seed=3, epoch=1)
    assert len({i for b in a for i in b}) == 16


def test_tiny_model_overfits_a_small_batch(inputs):
    torch.manual_seed(0)
    settings = resolved("et")
    data = build_data(
        settings, index=inputs.index, manifest=inputs.manifest, heatmaps=inputs.heatmaps
    )
    n = data.train.n_unannotated
    batch = collate([data.train[i] for i in [0, 1, 2, 3, n, n + 1, n + 2, n + 3]])
    from gazeloc.model import build_model
    from gazeloc.train.loop import model_settings

    model = build_model(model_settings(settings), seed=0)
    options = TrainingOptions.from_dict(settings["training"])
    step = Step(model, options, torch.device("cpu"))
    optimizer = make_optimizer(model, options)
    losses = []
    for _ in range(20):
        loss, mil, dec = step.loss(batch, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append((float(loss.detach()), float(mil.detach()), float(dec.detach())))
    # floors: −log(1 − 0.98^4) per positive unannotated label (C ≤ 1 − 0.98^G² on a 2×2 grid);
    # log 2 per pixel of the decoder channels masked out (reference's soft L_T)
    unannotated_positive = (batch["labels"] > 0) & batch["known"] & ~batch["annotated"][:, None]
    mil_floor = float(unannotated_positive.sum()) * -math.log(1 - 0.98**4)
    mask = batch["annotated"][:, None] & (batch["labels"] > 0) & batch["known"]
    dec_floor = float((~mask).sum()) / mask.numel() * math.log(2)
    assert losses[-1][1] - mil_floor < 0.1 * (losses[0][1] - mil_floor)
    assert losses[-1][2] - dec_floor < 0.3 * (losses[0][2] - dec_floor)


def test_cli_train(inputs, tmp_path):
    settings = resolved("ellipse", epochs=1)
    code = cli_main(
        [
            "train",
            "--settings",
            json.dumps(settings),
            "--seed",
            "2",
            "--index",
            str(inputs.index),
            "--manifest",
            str(inputs.manifest),
            "--ellipses",
            str(inputs.ellipses),
            "--out-dir",
            str(tmp_path),
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    assert code == 0
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "train_log.csv").is_file()
    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])


def test_a_non_finite_loss_stops_training_at_once(inputs, tmp_path, monkeypatch):
    from gazeloc.errors import NonFiniteLossError

    original = Step.loss
    calls = {"n": 0}

    def loss_going_nan(self, batch, params=None):
        loss, mil, dec = original(self, batch, params)
        calls["n"] += 1
        if calls["n"] == 2:  # the second step: lambda_a = inf, say
            mil = mil * float("inf")
            loss = loss + mil
        return loss, mil, dec

    monkeypatch.setattr(Step, "loss", loss_going_nan)
    with pytest.raises(NonFiniteLossError) as info:
        _train(inputs, tmp_path / "out")
    message = str(info.value)
    assert "step 1 (epoch 1): the loss is not finite" in message
    assert "total inf, MIL inf, decoder" in message
    assert not (tmp_path / "out" / "model.pt").exists()


def test_device_cuda_without_cuda_is_one_line():
    from gazeloc.config import ConfigError
    from gazeloc.train.loop import pick_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="device is cuda but PyTorch sees no CUDA device"):
        pick_device("cuda")


def test_resume_under_another_thread_count_warns(inputs, tmp_path, caplog):
    import logging

    _train(inputs, tmp_path, stop_after_steps=3)
    checkpoint = _weights(tmp_path / "resume" / "last.pt")
    assert checkpoint["threads"] == 1 and checkpoint["device"] == "cpu"
    caplog.set_level(logging.WARNING)
    torch.set_num_threads(2)
    try:
        _train(inputs, tmp_path, stop_after_steps=4)
    finally:
        torch.set_num_threads(1)
    (message,) = [r.getMessage() for r in caplog.records if "CPU threads" in r.getMessage()]
    assert "written with 1 CPU threads, resuming with 2" in message
    assert "bit-identical only at equal thread counts" in message


def test_strict_resume_refuses_another_thread_count(inputs, tmp_path):
    from gazeloc.config import ConfigError

    strict = resolved("et", keep_checkpoints=True, strict_resume=True)
    _train(inputs, tmp_path, settings=strict, stop_after_steps=3)
    before = (tmp_path / "resume" / "last.pt").read_bytes()
    torch.set_num_threads(2)
    try:
        with pytest.raises(ConfigError, match=r"training\.strict_resume is true") as info:
            _train(inputs, tmp_path, settings=strict, stop_after_steps=4)
    finally:
        torch.set_num_threads(1)
    assert "written with 1 CPU thread(s) on cpu, this job has 2 on cpu" in str(info.value)
    assert (tmp_path / "resume" / "last.pt").read_bytes() == before  # the checkpoint is kept
    assert not (tmp_path / "model.pt").exists()
    _train(inputs, tmp_path, settings=strict, stop_after_steps=4)  # same threads: resumes


def test_batch_size_above_the_training_set_is_a_config_message(inputs, tmp_path):
    from gazeloc.config import ConfigError

    with pytest.raises(ConfigError, match=r"config key 'training.batch_size' = 10000 is larger"):
        _train(inputs, tmp_path, settings=resolved("et", batch_size=10000))
    assert not (tmp_path / "model.pt").exists()


# --- the decoder steps only on batches with a decoder target (docs/method.md#losses) ---------


def _decoder_params(state: dict) -> dict:
    return {
        k: v
        for k, v in state.items()
        if k.startswith("decoder.") and "running" not in k and "num_batches" not in k
    }


def test_a_batch_without_a_decoder_target_leaves_the_decoder_untouched(inputs):
    from gazeloc.model import build_model
    from gazeloc.train.loop import decoder_supervised, model_settings

    settings = resolved("et")
    data = build_data(
        settings, index=inputs.index, manifest=inputs.manifest, heatmaps=inputs.heatmaps
    )
    n = data.train.n_unannotated
    supervised = collate([data.train[i] for i in [0, 1, n, n + 2]])
    unannotated = collate([data.train[i] for i in [2, 3, 4, 5]])
    assert decoder_supervised(supervised) and not decoder_supervised(unannotated)
    model = build_model(model_settings(settings), seed=0)
    options = TrainingOptions.from_dict(settings["training"])
    step = Step(model, options, torch.device("cpu"))
    optimizer = make_optimizer(model, options)

    def one_step(batch):
        loss, _, dec = step.loss(batch, None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return dec

    one_step(supervised)  # the decoder moves and has Adam moments from here on
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {
        name: optimizer.state[p]["exp_avg"].clone()
        for name, p in model.named_parameters()
        if name.startswith("decoder.")
    }
    assert moments and all(m.abs().sum() > 0 for m in moments.values())
    dec = one_step(unannotated)
    assert float(dec) == 0.0 and not dec.requires_grad
    after = model.state_dict()
    for name in _decoder_params(before):
        assert torch.equal(before[name], after[name]), name  # bit-identical: no grad, no decay
    for name, p in model.named_parameters():
        if name.startswith("decoder."):
            assert p.grad is None
            assert torch.equal(optimizer.state[p]["exp_avg"], moments[name])
    encoder = [k for k in before if k.startswith("encoder.") and k.endswith("weight")]
    assert any(not torch.equal(before[k], after[k]) for k in encoder)
    # the decoder's forward pass still ran: its BatchNorm statistics moved
    running = [k for k in before if k.startswith("decoder.") and "running_mean" in k]
    assert running and any(not torch.equal(before[k], after[k]) for k in running)


def test_unannotated_run_keeps_its_decoder_as_initialised(inputs, tmp_path):
    from gazeloc.model import build_model
    from gazeloc.train.loop import derived_seed, model_settings

    settings = resolved("none", epochs=1)
    _train(inputs, tmp_path, settings)
    trained = _weights(tmp_path / "model.pt")["state_dict"]
    initial = build_model(model_settings(settings), seed=derived_seed(3, "init")).state_dict()
    params = _decoder_params(initial)
    assert params
    for name, value in params.items():
        assert torch.equal(trained[name], value), name
    assert not torch.equal(trained["encoder.conv1.weight"], initial["encoder.conv1.weight"])


def test_et_run_decoder_still_learns(uninterrupted):
    from gazeloc.model import build_model
    from gazeloc.train.loop import derived_seed, model_settings

    out, _ = uninterrupted
    trained = _weights(out / "model.pt")["state_dict"]
    initial = build_model(model_settings(resolved("et")), seed=derived_seed(3, "init")).state_dict()
    changed = [k for k, v in _decoder_params(initial).items() if not torch.equal(trained[k], v)]
    assert len(changed) == len(_decoder_params(initial))
