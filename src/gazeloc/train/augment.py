"""Random affine augmentation of whole batches on the training device.

The reference applies torchvision's ``RandomAffine`` per item on the CPU: rotation
``U(−45°, 45°)``, translation ``round(U(−0.15 S, 0.15 S))`` pixels in x and in y, scale
``U(0.85, 1.15)``, no shear, fill 0, the same parameters for an image, its heatmaps and its
ellipse masks (docs/method.md#training). Here the parameters are drawn per item from a seeded
generator (so a run is reproducible and resumable) and every array is warped on the device with
one ``grid_sample`` call per batch.

Geometry, in pixel-index coordinates of the ``S × S`` frame (x right, y down) with centre
``c = ((S − 1)/2, (S − 1)/2)``: an input point ``p`` moves to
``p' = c + s·R(θ)(p − c) + t`` with ``R(θ) = [[cos θ, sin θ], [−sin θ, cos θ]]`` — a positive
angle turns the image counter-clockwise on screen. torchvision's ``affine`` (which
``RandomAffine`` calls) turns it clockwise for a positive angle: the sign is the opposite of the
reference's, which changes nothing because the angle is drawn from a range symmetric about 0.
Output pixels that map from outside the input are 0.

On a GPU the parameters stay on the CPU: the sampling matrices of the images and of their maps
are computed there and reach the device in one pinned, non-blocking copy per batch, so that the
augmentation never makes the CPU wait for the device.

Interpolation (``training.augment_interpolation``): ``nearest`` (the
reference: every array) or ``bilinear`` (images and heatmaps; binary ellipse masks always use
nearest so that they stay binary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

INTERPOLATIONS = ("nearest", "bilinear")


@dataclass(frozen=True)
class AffineParams:
    """Per-item parameters, each ``[N]``: ``angle`` (degrees), ``tx``, ``ty`` (px), ``scale``."""

    angle: Tensor
    tx: Tensor
    ty: Tensor
    scale: Tensor

    def __len__(self) -> int:
        return int(self.angle.shape[0])

    def select(self, index: Tensor) -> AffineParams:
        return AffineParams(self.angle[index], self.tx[index], self.ty[index], self.scale[index])


def sample_params(
    n: int,
    size: int,
    generator: torch.Generator,
    *,
    degrees: float = 45.0,
    translate: float = 0.15,
    scale: tuple[float, float] = (0.85, 1.15),
) -> AffineParams:
    """Draw ``n`` parameter sets on the CPU from ``generator`` (float64, device-independent)."""
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    max_t = translate * size
    return AffineParams(
        angle=(2 * u[:, 0] - 1) * degrees,
        tx=torch.round((2 * u[:, 1] - 1) * max_t),
        ty=torch.round((2 * u[:, 2] - 1) * max_t),
        scale=scale[0] + (scale[1] - scale[0]) * u[:, 3],
    )


def identity_params(n: int) -> AffineParams:
    zeros = torch.zeros(n, dtype=torch.float64)
    return AffineParams(zeros, zeros, zeros, torch.ones(n, dtype=torch.float64))


def forward_points(params: AffineParams, points: Tensor, size: int) -> Tensor:
    """Where input points ``[N, 2]`` (x, y pixel indices) land: ``c + s R (p − c) + t``."""
    theta = params.angle * math.pi / 180
    cos, sin = torch.cos(theta), torch.sin(theta)
    c = (size - 1) / 2
    dx, dy = points[:, 0] - c, points[:, 1] - c
    x = c + params.scale * (cos * dx + sin * dy) + params.tx
    y = c + params.scale * (-sin * dx + cos * dy) + params.ty
    return torch.stack([x, y], dim=1)


def sampling_matrices(params: AffineParams, size: int) -> Tensor:
    """``[N, 2, 3]`` matrices for ``affine_grid(align_corners=False)``: output → input.

    In normalised coordinates (``n = (2p + 1)/S − 1``, the frame centre at 0) the inverse map
    is ``n_in = A⁻¹ (n_out − 2t/S)`` with ``A = s R(θ)``.
    """
    theta = params.angle * math.pi / 180
    cos, sin = torch.cos(theta), torch.sin(theta)
    inv_s = 1.0 / params.scale
    # R(θ)⁻¹ = [[cos, −sin], [sin, cos]]
    a = (
        torch.stack([torch.stack([cos, -sin], dim=1), torch.stack([sin, cos], dim=1)], dim=1)
        * inv_s[:, None, None]
    )
    t = torch.stack([params.tx, params.ty], dim=1) * (2.0 / size)
    b = -(a @ t[:, :, None])
    return torch.cat([a, b], dim=2)


def warp(x: Tensor, params: AffineParams, mode: str = "nearest") -> Tensor:
    """Apply each item's transform to ``x`` ``[N, C, S, S]`` (float) with zero fill."""
    if len(params) != x.shape[0]:
        raise ValueError(f"{len(params)} parameter sets for {x.shape[0]} items")
    return warp_with(x, sampling_matrices(params, x.shape[-1]).float(), mode)


def warp_with(x: Tensor, matrices: Tensor, mode: str = "nearest") -> Tensor:
    """:func:`warp` with the sampling matrices ``[N, 2, 3]`` already computed (float32, on the
    CPU or on ``x``'s device)."""
    if mode not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {mode!r}")
    if matrices.shape[0] != x.shape[0]:
        raise ValueError(f"{matrices.shape[0]} parameter sets for {x.shape[0]} items")
    if x.shape[0] == 0:
        return x
    matrices = matrices.to(device=x.device, dtype=torch.float32, non_blocking=True)
    grid = F.affine_grid(matrices, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode="zeros", align_corners=False)


def batch_matrices(
    params: AffineParams, map_index: Tensor, size: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The float32 sampling matrices of a batch's images ``[B, 2, 3]`` and of its annotation
    maps ``[A, 2, 3]`` (the items ``map_index``, a CPU tensor), computed on the CPU and moved
    to ``device`` in one copy (pinned and non-blocking on a GPU)."""
    if map_index.device.type != "cpu":
        raise ValueError("map_index must be the batch's CPU copy (selecting it needs no sync)")
    images = sampling_matrices(params, size).float()
    both = torch.cat([images, images[map_index]])
    if device.type != "cpu":
        both = both.pin_memory().to(device, non_blocking=True)
    return both[: len(params)], both[len(params) :]


def augment_batch(
    images: Tensor,
    maps: Tensor,
    map_index: Tensor,
    params: AffineParams,
    *,
    interpolation: str = "nearest",
    binary_maps: bool = False,
) -> tuple[Tensor, Tensor]:
    """Warp ``images`` ``[B, 1, S, S]`` and the annotation maps ``[A, K, S, S]`` of the items
    ``map_index`` (``[A]`` positions in the batch, the CPU copy) with the same per-item
    parameters.

    ``binary_maps`` (ellipse masks) forces nearest interpolation for the maps.
    """
    if len(params) != images.shape[0]:
        raise ValueError(f"{len(params)} parameter sets for {images.shape[0]} items")
    image_m, map_m = batch_matrices(params, map_index, images.shape[-1], images.device)
    out_images = warp_with(images, image_m, interpolation)
    map_mode = "nearest" if binary_maps else interpolation
    out_maps = warp_with(maps, map_m, map_mode) if maps.shape[0] else maps
    return out_images, out_maps
