"""The multi-resolution MIL network: ResNet encoder, CNN Block 5 and the decoder.

Shapes for the paper's model (ResNet-50, input ``S = 512``, layers 3 and 4, grid ``G = 32``):
the encoder's layer3 (1024 ch at S/16 = 32²) is concatenated with layer4 (2048 ch at S/32 = 16²,
upsampled by nearest neighbour to 32²) → 3072 ch at 32²; CNN Block 5 (conv 3×3 → BN → ReLU →
conv 1×1) gives the 10 grid logits ``[B, 10, G, G]`` and keeps the 512-channel post-ReLU
activations, from which the decoder (three blocks of bilinear ×2 → conv 3×3 → BN) predicts
10 logit maps at ``8G × 8G`` (reference-method.md §6). Grid cells and decoder pixels are in
the square frame of the input (row = y, column = x).

Input: ``[B, 1, S, S]`` gray images in ``[0, 1]`` (float) or ``0..255`` (uint8). They are
broadcast to 3 channels and ImageNet-normalised; with ``double_normalization`` (the reference's
quirk, design.md quirk table) the normalisation is applied twice.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

N_LABELS = 10
BACKBONES = ("resnet18", "resnet34", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYER_STRIDE = {1: 4, 2: 8, 3: 16, 4: 32}
"""Downsampling factor of each ResNet stage's output relative to the input."""
_LAYER_CHANNELS = {
    "resnet18": {1: 64, 2: 128, 3: 256, 4: 512},
    "resnet34": {1: 64, 2: 128, 3: 256, 4: 512},
    "resnet50": {1: 256, 2: 512, 3: 1024, 4: 2048},
}
BLOCK5_CHANNELS = 512
DECODER_CHANNELS = (128, 64, N_LABELS)
DECODER_UPSAMPLING = 8
"""The decoder's output side is ``8 × grid`` (three ×2 blocks)."""
RANGE_LOW = 0.98
"""Eq. 1's range normalisation: every factor ``1 − p`` is mapped to ``[0.98, 1]``."""


@dataclass(frozen=True)
class ModelSettings:
    """Architecture of :class:`GazeLocNet` (the config's ``model`` section plus the input size).

    ``grid`` None means the resolution of the shallowest listed layer (``size / 16`` for layer3,
    ``size / 32`` for layer4 alone). ``pretrained`` is ``"imagenet"``, ``"none"`` or a path to a
    torchvision ResNet state dict (only read by :func:`build_model`).
    """

    backbone: str = "resnet50"
    layers: tuple[int, ...] = (3, 4)
    grid: int | None = None
    decoder: bool = True
    double_normalization: bool = True
    pretrained: str = "imagenet"
    input_size: int = 512
    n_labels: int = field(default=N_LABELS)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}: {self.backbone!r}")
        layers = tuple(sorted(int(x) for x in self.layers))
        if not layers or len(set(layers)) != len(layers) or not set(layers) <= set(LAYER_STRIDE):
            raise ValueError(f"layers must be distinct values of 1..4, not {self.layers!r}")
        object.__setattr__(self, "layers", layers)
        stride = LAYER_STRIDE[layers[-1]]
        if self.input_size < stride or self.input_size % stride:
            raise ValueError(
                f"input size {self.input_size} must be a multiple of {stride} (layer {layers[-1]})"
            )
        if self.grid is not None and self.grid < 1:
            raise ValueError(f"grid must be >= 1, not {self.grid}")

    @property
    def grid_size(self) -> int:
        """The grid side ``G`` in cells."""
        return self.grid if self.grid is not None else self.feature_size

    @property
    def feature_size(self) -> int:
        """Side of the concatenated feature map (the shallowest listed layer)."""
        return self.input_size // LAYER_STRIDE[self.layers[0]]

    @property
    def decoder_size(self) -> int:
        """Side of the decoder's output (``8 G``)."""
        return DECODER_UPSAMPLING * self.grid_size

    @property
    def feature_channels(self) -> int:
        return sum(_LAYER_CHANNELS[self.backbone][k] for k in self.layers)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"] = list(self.layers)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelSettings:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if "layers" in known:
            known["layers"] = tuple(known["layers"])
        return cls(**known)


class Outputs(NamedTuple):
    """What :meth:`GazeLocNet.forward` returns.

    ``grid_logits`` ``[B, K, G, G]``; ``decoder_logits`` ``[B, K, 8G, 8G]`` or None without a
    decoder; ``activations`` ``[B, 512, G, G]`` (CNN Block 5 after ReLU; input of the decoder
    and of GradCAM).
    """

    grid_logits: Tensor
    decoder_logits: Tensor | None
    activations: Tensor


def _torchvision_resnet(backbone: str) -> nn.Module:
    import torchvision

    return getattr(torchvision.models, backbone)(weights=None)


class Encoder(nn.Module):
    """A torchvision ResNet's stem and stages up to the deepest listed layer (no pool, no fc)."""

    def __init__(self, backbone: str, layers: tuple[int, ...]) -> None:
        super().__init__()
        net = _torchvision_resnet(backbone)
        self.layers = layers
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        for k in range(1, max(layers) + 1):
            self.add_module(f"layer{k}", getattr(net, f"layer{k}"))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for k in range(1, max(self.layers) + 1):
            x = getattr(self, f"layer{k}")(x)
            if k in self.layers:
                out.append(x)
        return out


def combine_features(features: list[Tensor], grid: int) -> Tensor:
    """Concatenate stage outputs at the grid (reference-method.md §6.2).

    Each map is resized with nearest neighbour to the largest spatial size so far (shallow to
    deep), the maps are concatenated along channels, then brought to ``grid``: a stride-1 max
    pool with kernel ``size − grid + 1`` when larger, bilinear upsampling
    (``align_corners=True``) when smaller, unchanged when equal.
    """
    size = max(f.shape[-1] for f in features)
    maps = [
        f if f.shape[-1] == size else F.interpolate(f, size=(size, size), mode="nearest")
        for f in features
    ]
    x = torch.cat(maps, dim=1) if len(maps) > 1 else maps[0]
    if size > grid:
        x = F.max_pool2d(x, kernel_size=size - grid + 1, stride=1)
    elif size < grid:
        x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=True)
    return x


class Decoder(nn.Module):
    """Three blocks of bilinear ×2 (align_corners) → conv 3×3 → BN (momentum 0.01), ReLU between."""

    def __init__(self, in_channels: int = BLOCK5_CHANNELS, n_labels: int = N_LABELS) -> None:
        super().__init__()
        channels = (in_channels, *DECODER_CHANNELS[:-1], n_labels)
        self.convs = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], 3, padding=1) for i in range(3)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels[i + 1], momentum=0.01) for i in range(3))

    def forward(self, x: Tensor) -> Tensor:
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            x = norm(conv(x))
            if i < 2:
                x = F.relu(x)
        return x


class GazeLocNet(nn.Module):
    """Encoder → grid logits (CNN Block 5) and, optionally, the decoder (module doc)."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__()
        self.settings = settings
        self.encoder = Encoder(settings.backbone, settings.layers)
        self.block5 = nn.Sequential(
            nn.Conv2d(settings.feature_channels, BLOCK5_CHANNELS, 3, padding=1, bias=False),
            nn.BatchNorm2d(BLOCK5_CHANNELS),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Conv2d(BLOCK5_CHANNELS, settings.n_labels, 1)
        self.decoder = Decoder(BLOCK5_CHANNELS, settings.n_labels) if settings.decoder else None
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        if settings.double_normalization:  # ((x − μ)/s − μ)/s = x/s² − μ(1 + s)/s²
            mean, std = mean * (1 + std), std * std
        self.register_buffer("input_mean", mean, persistent=False)
        self.register_buffer("input_std", std, persistent=False)

    def normalize(self, images: Tensor) -> Tensor:
        """``[B, 1, S, S]`` gray (float in [0, 1] or uint8) → ``[B, 3, S, S]`` network input."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        if images.shape[1] != 1:
            raise ValueError(f"expected gray images [B, 1, S, S], got {tuple(images.shape)}")
        return (images - self.input_mean) / self.input_std

    def forward(self, images: Tensor, *, decoder: bool = True) -> Outputs:
        """Grid logits, decoder logits (when built and ``decoder``) and Block-5 activations."""
        x = self.normalize(images)
        x = combine_features(self.encoder(x), self.settings.grid_size)
        activations = self.block5(x)
        grid_logits = self.classifier(activations)
        decoder_logits = self.decoder(activations) if self.decoder is not None and decoder else None
        return Outputs(grid_logits, decoder_logits, activations)


def image_log_complement(grid_logits: Tensor) -> Tensor:
    """``log(1 − C_k)`` = Σ_j log(1 − 0.02 σ(g_jk)), shape ``[B, K]`` (Eq. 1 in log space)."""
    return torch.log1p(-(1.0 - RANGE_LOW) * torch.sigmoid(grid_logits)).flatten(2).sum(-1)


def image_probabilities(grid_logits: Tensor) -> Tensor:
    """Image-level probabilities ``C_k = 1 − Π_j (0.98 + 0.02 (1 − σ(g_jk)))``, ``[B, K]``.

    The [0.98, 1] range normalisation of Eq. 1 is always used here (inference, AUC, GradCAM),
    whatever the loss's balancing (reference-method.md §6.3); computed as ``−expm1(Σ log)``
    so that it neither underflows nor loses precision near 0.
    """
    return -torch.expm1(image_log_complement(grid_logits))


# --- construction and weights ------------------------------------------------------------


def _imagenet_weight_file(backbone: str) -> Path:
    import torchvision

    weights = getattr(torchvision.models, f"ResNet{backbone[6:]}_Weights").IMAGENET1K_V1
    name = Path(weights.url).name
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def load_encoder_weights(model: GazeLocNet, source: str) -> str:
    """Load ResNet weights into the encoder; return what was loaded (for the log).

    ``source``: ``"none"`` (random), ``"imagenet"`` (torchvision's IMAGENET1K_V1 file from the
    torch hub cache, ``$TORCH_HOME/hub/checkpoints/``; if it is absent the run logs so and keeps
    random weights — no download is ever attempted), or a path to a state dict (a torchvision
    ResNet's, or a dict holding one under ``state_dict``; ``fc.*`` keys are ignored). A missing
    path is an error. Files are read with ``weights_only=True``.
    """
    if source == "none":
        return "random initialisation (model.pretrained: none)"
    if source == "imagenet":
        path = _imagenet_weight_file(model.settings.backbone)
        if not path.is_file():
            message = (
                f"ImageNet weights for {model.settings.backbone} not found at {path} (no network "
                "access at run time); starting from random weights. Place the file there to use "
                "them"
            )
            log.warning(message)
            return "random initialisation (ImageNet weights not in the torch cache)"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"model.pretrained: {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = model.encoder.state_dict()
    state = {k.removeprefix("encoder."): v for k, v in state.items()}
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(
            f"{path}: not a {model.settings.backbone} state dict (missing {missing[0]})"
        )
    for key, value in own.items():
        if state[key].shape != value.shape:
            raise ValueError(
                f"{path}: {key} has shape {tuple(state[key].shape)}, not {value.shape}"
            )
    model.encoder.load_state_dict({k: state[k] for k in own})
    log.info("encoder weights from %s", path)
    return f"encoder weights from {path}"


def build_model(settings: ModelSettings, *, seed: int | None = None) -> GazeLocNet:
    """A :class:`GazeLocNet` with PyTorch's default initialisation (seeded when ``seed`` is
    given) and the encoder weights ``settings.pretrained`` asks for."""
    if seed is not None:
        torch.manual_seed(seed)
    model = GazeLocNet(settings)
    load_encoder_weights(model, settings.pretrained)
    return model


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[GazeLocNet, dict]:
    """The trained model of a ``model.pt`` (eval mode) and its metadata (experiment, seed,
    epoch, validation AUC, settings, ...); ``meta["card"]`` holds the facts of the model card
    (:func:`gazeloc.model.card.card_facts`, what ``model_card.md`` shows). Read with
    ``weights_only=True``."""
    from gazeloc.model.card import card_facts

    payload = torch.load(path, map_location=map_location, weights_only=True)
    settings = ModelSettings.from_dict({**payload["model"], "pretrained": "none"})
    model = GazeLocNet(settings)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    meta["card"] = card_facts(meta)
    return model, meta


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
