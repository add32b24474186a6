"""Experiments as override sets: schema, Table 7 flags, resolution and workflow helpers."""

from __future__ import annotations

import copy
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import yaml

from gazeloc.config import ConfigError, check_config, load_schema
from gazeloc.experiments import (
    EXPERIMENTS,
    TrainingOptions,
    ablation_flags,
    method_settings,
    parse_runtime_options,
    resolve_experiment,
    rule_params,
    runtime_options,
    train_inputs,
    train_targets,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture(scope="module")
def schema() -> dict:
    return load_schema(SCHEMA)


def test_every_experiment_is_defined(config, schema):
    assert tuple(schema["properties"]["experiments"]["items"]["enum"]) == EXPERIMENTS
    assert tuple(config["experiment_settings"]) == EXPERIMENTS
    assert tuple(schema["properties"]["experiment_settings"]["properties"]) == EXPERIMENTS
    for name in EXPERIMENTS:  # config.yaml and the schema defaults agree
        default = schema["properties"]["experiment_settings"]["properties"][name]["default"]
        assert default == config["experiment_settings"][name], name


TABLE7 = {  # lsh, brn, mra, mtl
    "ablation_row1": (False, False, False, False),
    "ablation_row2": (True, False, False, False),
    "ablation_row3": (True, True, False, False),
    "ablation_row4": (True, True, True, False),
    "ablation_row5": (False, True, True, True),
    "et": (True, True, True, True),
}


@pytest.mark.parametrize(("name", "flags"), TABLE7.items())
def test_table7_rows(config, name, flags):
    resolved = resolve_experiment(config, name)
    assert tuple(ablation_flags(resolved).values()) == flags
    if not flags[2]:
        assert resolved["model"]["layers"] == [4]  # single resolution: a 16x16 grid at 512 px


def test_other_experiments(config):
    assert resolve_experiment(config, "unannotated")["annotations"] == "none"
    ellipse = resolve_experiment(config, "ellipse_15pct")
    assert ellipse["annotations"] == "ellipse"
    assert ellipse["training"]["percentage_annotated"] == 0.15
    assert ellipse["training"]["epochs"] == config["training"]["epochs"]  # base kept


def test_override_schemas_mirror_the_base_sections(schema):
    for section in ("model", "training"):
        base = schema["properties"][section]["properties"]
        override = schema["$defs"]["experiment"]["properties"][section]["properties"]
        assert base.keys() == override.keys()
        for key in base:
            assert {k: v for k, v in base[key].items() if k != "default"} == override[key], key
            assert "default" not in override[key]


def test_schema_defaults_are_the_paper_settings(schema):
    defaults = {k: v["default"] for k, v in schema["properties"]["training"]["properties"].items()}
    assert defaults == asdict(TrainingOptions())
    assert {f.name for f in fields(TrainingOptions)} == set(defaults)
    model = {k: v["default"] for k, v in schema["properties"]["model"]["properties"].items()}
    assert model == {
        "backbone": "resnet50",
        "pretrained": "imagenet",
        "pretrained_sha256": None,
        "layers": [3, 4],
        "grid": None,
        "decoder": True,
        "double_normalization": True,
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"model": {"backbone": "vgg16"}}, "config key 'model.backbone'"),
        ({"training": {"epochs": 0}}, "config key 'training.epochs'"),
        ({"training": {"percentage_annotated": 0}}, "training.percentage_annotated"),
        (
            {"experiment_settings": {"et": {"annotations": "et", "training": {"lr_x": 1}}}},
            "config key 'experiment_settings.et.training.lr_x' is unknown",
        ),
        (
            {"experiment_settings": {"et": {"annotations": "et", "images": {"size": 64}}}},
            "config key 'experiment_settings.et.images' is unknown",
        ),
        (
            {
                "experiment_settings": {
                    "ellipse": {"annotations": "ellipse", "label_specific_heatmaps": False}
                }
            },
            "experiment_settings.ellipse.annotations",
        ),
        ({"experiment_settings": {"mine": {"annotations": "et"}}}, "'experiment_settings.mine'"),
    ],
)
def test_bad_experiment_settings_are_named(config, override, message):
    bad = copy.deepcopy(config)
    for key, value in override.items():
        bad[key] = {**bad[key], **value}
    with pytest.raises(ConfigError) as info:
        check_config(bad, SCHEMA)
    assert message in str(info.value)


def test_resolve_errors(config):
    with pytest.raises(KeyError):
        resolve_experiment(config, "nope")
    bad = copy.deepcopy(config)
    bad["experiment_settings"]["ellipse"]["label_specific_heatmaps"] = False
    with pytest.raises(ValueError, match="needs annotations: et"):
        resolve_experiment(bad, "ellipse")


def test_runtime_keys_are_not_method_settings(config):
    resolved = resolve_experiment(config, "et")
    method = method_settings(resolved)
    assert "workers" not in method["training"] and "device" not in method["training"]
    params = rule_params(config, "et")
    assert set(params) == {"settings"} and '"device"' not in params["settings"]
    runtime = runtime_options(config, "et")
    assert runtime == (
        "device=auto,compile=0,checkpoint_minutes=10.0,keep_checkpoints=0,strict_resume=0"
    )
    assert parse_runtime_options(runtime) == {
        "device": "auto",
        "compile": False,
        "checkpoint_minutes": 10.0,
        "keep_checkpoints": False,
        "strict_resume": False,
    }
    changed = copy.deepcopy(config)
    changed["training"].update(
        workers=7, device="cuda", compile=True, checkpoint_minutes=2.5, keep_checkpoints=True
    )
    assert rule_params(changed, "et") == params
    assert parse_runtime_options(runtime_options(changed, "et"))["checkpoint_minutes"] == 2.5
    changed["experiment_settings"]["ellipse"]["training"] = {"lr": 0.01}
    assert rule_params(changed, "et")["settings"] == params["settings"]  # other experiment
    with pytest.raises(ValueError, match="not a runtime-only"):
        parse_runtime_options("lr=0.1")


@pytest.mark.parametrize(
    ("key", "value"),
    [("lambda_t", 30.0), ("lambda_a", 1.0), ("heatmap_threshold", 0.3), ("subset", "random")],
)
def test_annotated_only_keys_leave_unannotated_alone(config, key, value):
    changed = copy.deepcopy(config)
    changed["training"][key] = value
    assert rule_params(changed, "unannotated") == rule_params(config, "unannotated")
    for experiment in ("ellipse", "et", "ablation_row1"):
        assert (
            rule_params(changed, experiment)["settings"]
            != rule_params(config, experiment)["settings"]
        )
    changed["training"]["lr"] = 0.01  # every experiment uses the learning rate
    assert rule_params(changed, "unannotated") != rule_params(config, "unannotated")


def test_workflow_helpers(config, capsys):
    assert set(train_inputs(config, "r", "unannotated")) == {"index", "manifest"}
    assert train_inputs(config, "r", "ellipse")["ellipses"] == "r/ellipses/phase3.h5"
    assert set(train_inputs(config, "r", "ablation_row5")) == {
        "index",
        "manifest",
        "heatmaps",
        "ellipses",
    }
    cfg = {**config, "seeds": [1, 2], "experiments": ["unannotated", "et"]}
    everything = train_targets(cfg, "r", lambda path: True)
    assert everything == [
        f"r/models/{e}/seed{s}/{f}"
        for e in ("unannotated", "et")
        for s in (1, 2)
        for f in ("model.pt", "train_log.csv")
    ]
    partial = train_targets(cfg, "r", lambda path: "heatmaps" not in path)
    assert all("unannotated" in t for t in partial) and len(partial) == 4
    assert "et is left out" in capsys.readouterr().err


def test_vanishing_ellipses_only_concerns_ellipse_experiments(config):
    changed = copy.deepcopy(config)
    changed["training"]["vanishing_ellipses"] = "skip"
    for experiment in ("unannotated", "et"):
        assert rule_params(changed, experiment) == rule_params(config, experiment)
    assert rule_params(changed, "ellipse") != rule_params(config, "ellipse")
    with pytest.raises(ValueError, match="vanishing_ellipses"):
        TrainingOptions.from_dict({"vanishing_ellipses": "drop"})
