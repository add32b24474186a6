"""Pretrained encoder weights: where the file is, whether it is the right one, how to fetch it.

``model.pretrained`` is ``imagenet`` (torchvision's IMAGENET1K_V1 file of the backbone, in the
torch hub cache), ``none`` (random initialisation) or the path of a ResNet state dict
(optionally checked against ``model.pretrained_sha256``). The weights are an input of the
training rule: when the file is missing the run stops before any training job with a message
that names the file, where it was looked for and the command that fetches it. Nothing is ever
downloaded during a run; ``gazeloc fetch-weights`` (run once on a machine with network, e.g. a
cluster's login node) downloads into the torch cache with torchvision's own hash check.

torchvision names its files ``<arch>-<first 8 hex digits of the file's sha256>.pth``: a file in
the cache is checked against that prefix. Importing this module does not import torch (the
Snakefile imports it).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gazeloc.errors import DataFormatError

IMAGENET_FILES: dict[str, str] = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth",
}
"""torchvision's IMAGENET1K_V1 file of each backbone (the name carries its sha256 prefix)."""
DOWNLOAD_URL = "https://download.pytorch.org/models/"
NAMES = ("imagenet", "none")
RANDOM = "random"
"""What ``model.pt`` records as ``weights_sha256`` for ``model.pretrained: none``."""


class WeightsError(DataFormatError):
    """Pretrained weights that are missing, unknown or not the expected file."""


def torch_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The torch hub checkpoint folder, as ``torch.hub.get_dir()`` finds it:
    ``$TORCH_HOME/hub/checkpoints``, else ``$XDG_CACHE_HOME/torch/hub/checkpoints``, else
    ``~/.cache/torch/hub/checkpoints``."""
    env = os.environ if environ is None else environ
    if env.get("TORCH_HOME"):
        home = Path(env["TORCH_HOME"]).expanduser()
    else:
        cache = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
        home = Path(cache).expanduser() / "torch"
    return home / "hub" / "checkpoints"


def fetch_command(backbone: str) -> str:
    return f"gazeloc fetch-weights --backbone {backbone}"


@dataclass(frozen=True)
class WeightsSpec:
    """What ``model`` asks for: ``kind`` none / imagenet / file, the file and its expected
    sha256 (``expect``: a prefix for torchvision's files, the full hash or None for a file)."""

    kind: str
    backbone: str
    path: Path | None = None
    expect: str | None = None
    source: str = "none"


def weights_spec(model: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> WeightsSpec:
    """The weights of a (resolved) ``model`` section; a value of ``pretrained`` that is neither
    a known name nor an existing file is refused with the nearest known name, if any."""
    backbone = str(model.get("backbone", "resnet50"))
    source = str(model.get("pretrained", "imagenet"))
    sha = model.get("pretrained_sha256")
    if source == "none":
        return WeightsSpec("none", backbone)
    if source == "imagenet":
        name = IMAGENET_FILES[backbone]
        prefix = name.rsplit("-", 1)[1].split(".")[0]
        return WeightsSpec("imagenet", backbone, torch_cache_dir(environ) / name, prefix, source)
    path = Path(source).expanduser()
    if not path.exists():
        close = difflib.get_close_matches(source.strip().lower(), NAMES, n=1, cutoff=0.6)
        if close:
            raise WeightsError(
                "config",
                f"model.pretrained = {source!r} is neither a known name ({', '.join(NAMES)}) "
                f"nor an existing file; did you mean {close[0]!r}?",
            )
    return WeightsSpec("file", backbone, path, str(sha).lower() if sha else None, source)


def missing_message(spec: WeightsSpec) -> str:
    if spec.kind == "imagenet":
        return (
            f"ImageNet weights for {spec.backbone} (model.pretrained: imagenet) not found: "
            f"looked for {spec.path.name} in the torch cache {spec.path.parent} "
            "($TORCH_HOME/hub/checkpoints, else ~/.cache/torch/hub/checkpoints). Nothing is "
            "downloaded during a run: fetch it once on a machine with network (e.g. a login "
            f"node) with `{fetch_command(spec.backbone)}`, or set model.pretrained: none"
        )
    return (
        f"model.pretrained: the weights file {spec.path} does not exist (resolved from the "
        f"working directory {Path.cwd()}); give the path of a {spec.backbone} state dict, "
        "imagenet or none"
    )


def locate(model: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> WeightsSpec:
    """:func:`weights_spec`, refusing a missing file (:func:`missing_message`)."""
    spec = weights_spec(model, environ)
    if spec.kind != "none" and not spec.path.is_file():
        raise WeightsError(spec.path, missing_message(spec))
    return spec


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | Path, expect: str | None) -> str:
    """The file's sha256, refused when it does not start with ``expect`` (a prefix or the
    full hash; None: anything)."""
    sha = sha256_file(path)
    if expect and not sha.startswith(expect.lower()):
        raise WeightsError(
            path,
            f"sha256 {sha} does not match the expected {expect} (a damaged or different file); "
            "delete it and fetch it again, or fix model.pretrained_sha256",
        )
    return sha


def check_record(path: str | Path, expect: str | None, source: str) -> dict[str, Any]:
    """What the weights rule writes: the file, its size and sha256, the configured source."""
    sha = verify(path, expect)
    return {
        "path": str(Path(path).resolve()),
        "size": Path(path).stat().st_size,
        "sha256": sha,
        "source": source,
    }


def read_record(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --- workflow helpers (workflow/rules/train.smk) ------------------------------------------


def weights_input(model: Mapping[str, Any]) -> list[str]:
    """The training rule's weights file ([] for none); a missing file stops the DAG build."""
    spec = locate(model)
    return [] if spec.kind == "none" else [str(spec.path)]


def expected_hash(model: Mapping[str, Any]) -> str:
    spec = weights_spec(model)
    return spec.expect or ""


# --- fetching (gazeloc fetch-weights; needs network) ---------------------------------------


def fetch(backbone: str, progress: bool = True) -> Path:
    """Download torchvision's ImageNet file of ``backbone`` into the torch cache (torchvision
    checks the hash in its name), unless it is already there; return its path."""
    import torch

    name = IMAGENET_FILES[backbone]
    target = torch_cache_dir() / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.load_state_dict_from_url(
            DOWNLOAD_URL + name,
            model_dir=str(target.parent),
            progress=progress,
            check_hash=True,
            weights_only=True,
        )
    verify(target, name.rsplit("-", 1)[1].split(".")[0])
    return target
