"""Hit rate (the pointing game): does a heatmap's maximum land inside the ellipse mask?

For one reading, label and heatmap source: the maximum of the map is taken at the map's own
resolution (the first maximum in row-major order, as :func:`torch.argmax` returns it). A map
of side ``g`` coarser than the frame ``S`` stands for the frame by nearest-neighbour
upscaling, so its cell ``(r, c)`` covers the frame rows ``lo(r) .. hi(r)`` with
``lo(r) = ceil(r·S/g)`` and ``hi(r) = ceil((r+1)·S/g) − 1`` (and the same for columns); the
frame pixel at the centre of that block, ``floor((lo + hi) / 2)`` (the lower of the two middle
pixels for an even block), decides: the hit is 1 when that pixel is inside the mask, else 0.
No threshold is involved.
"""

from __future__ import annotations

import torch
from torch import Tensor


def block_centre(index: Tensor, side: int, size: int) -> Tensor:
    """Frame coordinate of the centre of map cell ``index`` (map side ``side``, frame ``size``)."""
    lo = (index * size + side - 1) // side
    hi = ((index + 1) * size + side - 1) // side - 1
    return (lo + hi) // 2


def pointing_hits(maps: Tensor, masks: Tensor) -> Tensor:
    """Hits of ``maps`` ``[..., g, g]`` against ``masks`` ``[..., S, S]`` (bool, same leading
    shape, ``S ≥ g``): a bool tensor of the leading shape (module doc)."""
    size, side = masks.shape[-1], maps.shape[-1]
    if masks.shape[:-2] != maps.shape[:-2] or masks.shape[-2] != size or maps.shape[-2] != side:
        raise ValueError(f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} do not match")
    if size < side:
        raise ValueError(f"frame {size} is smaller than the map side {side}")
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, side * side)
    peak = torch.argmax(flat, dim=-1)  # first maximum in row-major order
    row = block_centre(torch.div(peak, side, rounding_mode="floor"), side, size)
    col = block_centre(peak % side, side, size)
    pixels = masks.reshape(-1, size * size)
    hit = pixels.gather(-1, (row * size + col)[:, None])[:, 0]
    return hit.bool().reshape(lead)
