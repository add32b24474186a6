"""What the workflow's ``predict`` rule runs (used by ``workflow/rules/predict.smk``; no torch).

The rule is off unless ``predict.images`` names a folder. It then applies the model of
``predict.experiment`` and ``predict.seed`` to that folder, writing to
``{results}/predictions/{experiment}/seed{seed}/``, with the validation choice of source and
thresholds (``tables/selection.csv``) when the run evaluates that experiment.
"""

from __future__ import annotations

from typing import Any

OUTPUTS = ("predictions.csv", "heatmaps.h5", "skipped.csv", "predict.json")


def enabled(config: dict[str, Any]) -> bool:
    return bool((config.get("predict") or {}).get("images"))


def predict_settings(config: dict[str, Any]) -> dict[str, Any]:
    """``images``, ``experiment``, ``seed`` of the config, checked against the run's
    experiments and seeds (a model the run does not train cannot be applied)."""
    section = config.get("predict") or {}
    experiment = section.get("experiment", "et")
    seed = int(section.get("seed", 1))
    if experiment not in config.get("experiments", []):
        raise ValueError(
            f"predict.experiment: {experiment!r} is not one of the run's experiments "
            f"({', '.join(config.get('experiments', [])) or 'none'}); add it to experiments "
            "or choose another"
        )
    if seed not in config.get("seeds", []):
        raise ValueError(
            f"predict.seed: {seed} is not one of the run's seeds {config.get('seeds')}; "
            "add it to seeds or choose another"
        )
    return {"images": str(section["images"]), "experiment": experiment, "seed": seed}


def out_dir(config: dict[str, Any], results: str) -> str:
    s = predict_settings(config)
    return f"{results}/predictions/{s['experiment']}/seed{s['seed']}"


def predict_targets(config: dict[str, Any], results: str) -> list[str]:
    """The rule's outputs (none when it is off)."""
    if not enabled(config):
        return []
    out = out_dir(config, results)
    return [*(f"{out}/{name}" for name in OUTPUTS), f"{out}/overlays"]
