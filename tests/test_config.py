"""Config schema: every key of config.yaml and the presets validates; bad values are named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from gazeloc.config import ConfigError, check_config, coerce_config, load_schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def test_default_config_is_valid():
    check_config(_config(), SCHEMA)


@pytest.mark.parametrize("preset", sorted((ROOT / "workflow" / "presets").glob("*.yaml")))
def test_presets_are_valid(preset, tmp_path):
    config = _merge(_config(), yaml.safe_load(preset.read_text()))
    if config["data"]["source"] == "real":  # the user gives the dataset roots
        with pytest.raises(ConfigError, match="reflacx_dir"):
            check_config(config, SCHEMA)
        config["data"].update(reflacx_dir=str(tmp_path), mimic_dir=str(tmp_path))
    check_config(config, SCHEMA)


def test_paper_preset_is_the_paper_study():
    from gazeloc.experiments import EXPERIMENTS, ablation_flags, resolve_experiment

    config = _merge(_config(), yaml.safe_load((ROOT / "workflow/presets/paper.yaml").read_text()))
    assert config["images"]["size"] == 512 and len(config["seeds"]) == 5
    assert tuple(config["experiments"]) == EXPERIMENTS
    et = resolve_experiment(config, "et")
    assert et["model"]["backbone"] == "resnet50" and et["training"]["epochs"] == 60
    assert et["training"]["batch_size"] == 20 and et["input_size"] == 512
    # the demo trains without augmentation; the paper's study must not inherit that
    assert et["training"]["augment"] is True
    assert ablation_flags(et) == {"lsh": True, "brn": True, "mra": True, "mtl": True}
    row1 = resolve_experiment(config, "ablation_row1")
    assert ablation_flags(row1) == {"lsh": False, "brn": False, "mra": False, "mtl": False}


def test_every_schema_key_is_documented_in_config_yaml():
    """config.yaml documents every key: each schema property appears in it."""
    text = (ROOT / "config.yaml").read_text()
    schema = load_schema(SCHEMA)

    def keys(node: dict, prefix: str = ""):
        for name, sub in node.get("properties", {}).items():
            yield name
            yield from keys(sub, f"{prefix}{name}.")

    missing = [k for k in keys(schema) if f"{k}:" not in text]
    assert missing == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"synthetic": {"seedd": 1}}, "config key 'synthetic.seedd' is unknown"),
        ({"colour": "red"}, "config key 'colour' is unknown"),
        ({"images": {"size": "big"}}, "config key 'images.size' = 'big'"),
        ({"images": {"size": 4000}}, "from 32 to 2048"),
        ({"images": {"size": 100}}, "a multiple of 8"),
        ({"data": {"source": "mimic"}}, "one of 'synthetic', 'real'"),
        ({"data": {"source": "real"}}, "config key 'data.reflacx_dir'"),
        ({"seeds": []}, "config key 'seeds'"),
        ({"seeds": [1, 1]}, "config key 'seeds'"),
        ({"experiments": ["et", "bogus"]}, "config key 'experiments.1' = 'bogus'"),
        ({"synthetic": {"image_size": "huge"}}, "config key 'synthetic.image_size'"),
        ({"synthetic": {"phase1_images": 60}}, "from 0 to 59"),
        ({"heatmaps": {"sigma_degrees": 0}}, "from 0 (excluded) to"),
        ({"training": {"lr": float("nan")}}, "config key 'training.lr' = nan"),
        ({"training": {"lambda_a": float("inf")}}, "'training.lambda_a' = inf is not allowed"),
        ({"heatmaps": {"sigma_degrees": float("-inf")}}, "not a finite number"),
        ({"model": {"grid": 256}}, "config key 'model.grid' = 256 is not allowed: larger than"),
        ({"results_dir": "/"}, "it is the file system root"),
        ({"results_dir": str(Path.home())}, "it is your home folder"),
    ],
)
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError) as info:
        check_config(_merge(_config(), override), SCHEMA)
    assert message in str(info.value)


def test_real_source_with_paths_is_valid(tmp_path):
    check_config(
        _merge(_config(), {"data": {"source": "real", "reflacx_dir": "a", "mimic_dir": "b"}}),
        SCHEMA,
    )


# --- typed overrides: structured --config values arrive as strings (YAML BaseLoader) --------


def _override(text: str) -> dict:
    """What Snakemake makes of ``--config KEY=VALUE`` with a structured VALUE."""
    return yaml.load(text, Loader=yaml.BaseLoader)


def _coerced(override: dict) -> dict:
    config = _merge(_config(), override)
    coerce_config(config, SCHEMA)
    check_config(config, SCHEMA)
    return config


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("{training: {epochs: 2}}", ("training", "epochs"), 2),  # integer
        ("{training: {lr: 0.0005}}", ("training", "lr"), 0.0005),  # number
        ("{training: {lr: 1e-4}}", ("training", "lr"), 1e-4),
        ("{training: {augment: false}}", ("training", "augment"), False),  # boolean
        ("{model: {grid: null}}", ("model", "grid"), None),  # integer or null: null
        ("{model: {grid: 4}}", ("model", "grid"), 4),
        ("{images: {size: 96}}", ("images", "size"), 96),
        ("{seeds: [1, 2]}", ("seeds",), [1, 2]),  # a list
        ("{synthetic: {image_size: 320}}", ("synthetic", "image_size"), 320),  # union: integer
        ("{synthetic: {image_size: real}}", ("synthetic", "image_size"), "real"),  # union: const
        ("{model: {pretrained: none}}", ("model", "pretrained"), "none"),  # strings stay
        (  # a nested section (an experiment's training overrides)
            "{experiment_settings: {et: {annotations: et, training: {lambda_t: 30}}}}",
            ("experiment_settings", "et", "training", "lambda_t"),
            30,
        ),
    ],
)
def test_structured_overrides_are_typed(text, path, value):
    override = _override(text)
    raw = override
    for key in path[:-1]:
        raw = raw[key]
    assert isinstance(raw[path[-1]], str | list)  # YAML's BaseLoader: strings only
    config = _coerced(override)
    for key in path:
        config = config[key]
    assert config == value and type(config) is type(value)


def test_first_type_in_schema_order_wins():
    from gazeloc.config import _coerce

    schema = {"type": "object", "properties": {"a": {"type": ["string", "integer"]}}}
    assert _coerce({"a": "5"}, schema, schema) == {"a": "5"}
    schema["properties"]["a"]["type"] = ["integer", "string"]
    assert _coerce({"a": "5"}, schema, schema) == {"a": 5}
    assert _coerce({"a": "five"}, schema, schema) == {"a": "five"}


def test_override_that_fits_no_type_gives_the_config_message():
    with pytest.raises(ConfigError, match=r"config key 'images\.size' = 'big'"):
        _coerced(_override("{images: {size: big}}"))
    with pytest.raises(ConfigError, match=r"config key 'synthetic\.image_size' = 'huge'"):
        _coerced(_override("{synthetic: {image_size: huge}}"))


def test_results_dir_may_not_be_or_hold_a_dataset_root(tmp_path):
    data = {"source": "real", "reflacx_dir": str(tmp_path / "r"), "mimic_dir": str(tmp_path / "m")}
    for results, what in ((tmp_path / "r", "data.reflacx_dir"), (tmp_path, "or holds it")):
        with pytest.raises(ConfigError, match="config key 'results_dir'") as info:
            check_config(_merge(_config(), {"data": data, "results_dir": str(results)}), SCHEMA)
        assert what in str(info.value)
    check_config(_merge(_config(), {"data": data, "results_dir": str(tmp_path / "out")}), SCHEMA)


def test_grid_per_experiment_bounded_by_the_image_size():
    override = {"images": {"size": 64}, "experiment_settings": {"et": {"model": {"grid": 128}}}}
    with pytest.raises(ConfigError, match=r"experiment_settings\.et\.model\.grid"):
        check_config(_merge(_config(), override), SCHEMA)
