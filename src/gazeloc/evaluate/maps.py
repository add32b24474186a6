"""Heatmap sources of a trained model and their IoU against ellipse masks at many thresholds.

Sources (docs/method.md#evaluation), per image and label, values in [0, 1]:

* ``grid``: the spatial activations σ(grid logits), ``G × G`` cells of the square frame;
* ``decoder``: σ(decoder logits), ``8G × 8G`` (models with a decoder only);
* ``gradcam``: Grad-CAM of the image-level probability ``C_k`` (Eq. 1) on the 512-channel
  Block-5 activations: channel weights are the gradients summed over space, the map is
  ReLU(Σ_c w_c A_c) divided by its maximum (+1e-20), ``G × G``.

Because the grid logits are a 1×1 convolution of those activations (``g_k = W_k·A + b_k``),
the gradient of ``C_k`` with respect to ``A_c(x)`` is ``∂C_k/∂g_k(x) · W_kc``, so the Grad-CAM
map is ``ReLU(s_k (g_k − b_k))`` with ``s_k = Σ_x ∂C_k/∂g_k(x) ≥ 0``: :func:`gradcam` evaluates
this closed form without a backward pass (and under ``torch.no_grad``);
:func:`gradcam_autograd` is the direct computation it is tested against.

IoU (:func:`iou_thresholds`): a map is upscaled to the frame (``S × S``) by nearest neighbour
and compared with the ellipse mask as ``map > t`` (strict) for every threshold ``t`` at once.
When ``S`` is a multiple of the map side, the upscaling is never materialised: each map cell
stands for an ``f × f`` block of the frame (``f = S / side``), carrying its block's count of
mask pixels; the cells are sorted once per map and every threshold is a binary search.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gazeloc.model.network import RANGE_LOW, GazeLocNet, Outputs

SOURCES = ("grid", "decoder", "gradcam")
GRADCAM_EPS = 1e-20


def gradcam_scale(grid_logits: Tensor) -> Tensor:
    """``s_k = Σ_x ∂C_k/∂g_k(x)`` per image and label, ``[B, K]`` (float64).

    With ``q_x = 1 − 0.02 σ(g_x)`` and ``1 − C = Π_x q_x``:
    ``∂C/∂g_x = (1 − C) · 0.02 σ(g_x)(1 − σ(g_x)) / q_x``.
    """
    g = grid_logits.double().flatten(2)
    sig = torch.sigmoid(g)
    a = 1.0 - RANGE_LOW
    q = 1.0 - a * sig
    complement = torch.exp(torch.log(q).sum(-1))
    return complement * (a * sig * (1.0 - sig) / q).sum(-1)


def gradcam(model: GazeLocNet, outputs: Outputs) -> Tensor:
    """Grad-CAM maps ``[B, K, G, G]`` in [0, 1] from a forward pass's outputs (closed form,
    module doc); no gradient is needed."""
    bias = model.classifier.bias
    logits = outputs.grid_logits.double()
    centred = logits - (bias.double()[None, :, None, None] if bias is not None else 0.0)
    cam = F.relu(gradcam_scale(outputs.grid_logits)[:, :, None, None] * centred)
    peak = cam.flatten(2).amax(-1)[:, :, None, None]
    return (cam / (peak + GRADCAM_EPS)).float()


def gradcam_autograd(model: GazeLocNet, images: Tensor) -> Tensor:
    """Grad-CAM computed directly with autograd (docs/method.md#evaluation), ``[B, K, G, G]``:
    one backward pass of Σ_images C_k per label to the Block-5 activations."""
    from gazeloc.model.network import image_probabilities

    with torch.enable_grad():
        out = model(images, decoder=False)
        activations = out.activations
        probs = image_probabilities(out.grid_logits)
        maps = []
        for k in range(probs.shape[1]):
            (grad,) = torch.autograd.grad(probs[:, k].sum(), activations, retain_graph=True)
            weights = grad.sum(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * activations).sum(dim=1))
            peak = cam.flatten(1).amax(-1)[:, None, None]
            maps.append(cam / (peak + GRADCAM_EPS))
    return torch.stack(maps, dim=1).detach()


def source_maps(
    model: GazeLocNet, images: Tensor, sources: Sequence[str] = SOURCES
) -> dict[str, Tensor]:
    """The requested heatmap sources of a batch (``images`` ``[B, 1, S, S]`` float in [0, 1]
    or uint8), each ``[B, K, side, side]`` float32 in [0, 1]. ``decoder`` is left out for a
    model without one. Runs under ``torch.no_grad``."""
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown heatmap source {unknown[0]!r} (one of {', '.join(SOURCES)})")
    want_decoder = "decoder" in sources and model.decoder is not None
    with torch.no_grad():
        out = model(images, decoder=want_decoder)
        maps: dict[str, Tensor] = {}
        if "grid" in sources:
            maps["grid"] = torch.sigmoid(out.grid_logits.float())
        if want_decoder:
            assert out.decoder_logits is not None
            maps["decoder"] = torch.sigmoid(out.decoder_logits.float())
        if "gradcam" in sources:
            maps["gradcam"] = gradcam(model, out)
    return maps


def upscale_nearest(maps: Tensor, size: int) -> Tensor:
    """Nearest-neighbour upscaling of ``[..., g, g]`` maps to ``[..., size, size]`` (source
    index ``floor(i · g / size)``, as ``F.interpolate(mode="nearest")``)."""
    g = maps.shape[-1]
    rows = torch.div(torch.arange(size, device=maps.device) * g, size, rounding_mode="floor")
    return maps[..., rows, :][..., :, rows]


def iou_thresholds(maps: Tensor, masks: Tensor, thresholds: Sequence[float]) -> Tensor:
    """IoU of ``upscale(map) > t`` with the mask for every threshold ``t`` at once.

    ``maps`` ``[..., g, g]`` float, ``masks`` ``[..., S, S]`` bool with the same leading
    shape. Returns ``[..., T]`` float64; 0/0 → 0. Thresholds are compared at the maps'
    precision (float32 for float16/bfloat16 maps), as ``map > 0.1`` does in torch with a
    Python float: a float32 map value 0.1 is not above the threshold 0.1.
    """
    size, g = masks.shape[-1], maps.shape[-1]
    if masks.shape[:-2] != maps.shape[:-2] or masks.shape[-2] != size:
        raise ValueError(f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} do not match")
    if size < g:
        raise ValueError(f"frame {size} is smaller than the map side {g}")
    lead = maps.shape[:-2]
    if size % g == 0:
        f = size // g
        counts = masks.reshape(*lead, g, f, g, f).sum(dim=(-3, -1), dtype=torch.int64)
        area = f * f
    else:
        maps = upscale_nearest(maps, size)
        counts, area = masks.to(torch.int64), 1
    if maps.dtype not in (torch.float32, torch.float64):
        maps = maps.float()
    values = maps.reshape(-1, maps.shape[-1] * maps.shape[-2])
    counts = counts.reshape(values.shape)
    ordered, order = torch.sort(values, dim=-1)
    prefix = F.pad(torch.cumsum(counts.gather(-1, order), dim=-1), (1, 0))
    t = torch.as_tensor(thresholds, dtype=values.dtype, device=values.device)
    t = t.expand(values.shape[0], t.numel()).contiguous()
    first_above = torch.searchsorted(ordered, t, right=True)  # cells > t start here
    total = prefix[:, -1:]
    hit = total - prefix.gather(-1, first_above)
    predicted = (values.shape[-1] - first_above) * area
    union = predicted + total - hit
    iou = torch.where(
        union > 0, hit.double() / union.clamp(min=1).double(), torch.zeros((), dtype=torch.float64)
    )
    return iou.reshape(*lead, t.shape[-1])
