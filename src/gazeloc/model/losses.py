"""The training losses, as the reference implements them (docs/method.md#losses).

Notation: ``g`` grid logits ``[B, K, G, G]``, ``p = σ(g)``, ``N = G²`` cells, ``c`` the
annotation flag of an image, ``y`` its labels, ``b`` the thresholded grid annotation.

Range normalisation maps a factor ``q`` to ``f_L(q) = L + (1 − L) q``. Every product is
evaluated as a sum of logs with ``log f_L(1 − p) = log1p(−(1 − L) p)`` and
``log f_L(p) = log1p(−(1 − L)(1 − p))``: exact for small ``p`` (no cancellation), and never
underflowing since a factor is at least ``L``.

* ``L_A`` (Eq. 2, annotated images, every label): ``−log(Π_{b=1} f_{L+}(p) Π_{b=0} f_{L−}(1−p)
  + 1e−20)`` with ``L± = 0.0056738^(1/n±)`` (balanced; ``n±`` the number of factors of each
  product) or ``L± = 0.98``.
* ``L_U+`` / ``L_U−`` (Eqs. 3–4, unannotated images): ``−log(C + 1e−20)`` /
  ``−log(1 − C + 1e−20)`` with Eq. 1's ``C`` (always the 0.98 range).
* ``L_I`` (Eq. 5): the **sum** over images and labels of ``λ_A c L_A + (1−c) y L_U+ +
  (1−c)(1−y) L_U−``.
* ``L_T`` (Eq. 6): decoder cross-entropy (soft target, logit masking, mean over all entries;
  or the paper's binary version), and ``L = L_I + λ_T L_T`` (Eq. 7).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from gazeloc.model.network import RANGE_LOW

EPS = 1e-20
"""The reference's ``+ 1e−20`` inside every ``−log``."""
BALANCED_MIN = 0.0056738
"""Balanced range normalisation: every product's minimum (``0.98 ** 256``)."""
LOG_EPS = math.log(EPS)


def balanced_low(n: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``1 − L(n)`` with ``L(n) = 0.0056738^(1/n)`` (``n = 0`` → ``L = 0``), float, shape of
    ``n`` in ``dtype``; computed with ``expm1`` so that it stays exact for large ``n``."""
    n = n.to(dtype)
    safe = torch.clamp(n, min=1.0)
    one_minus = -torch.expm1(math.log(BALANCED_MIN) / safe)
    return torch.where(n > 0, one_minus, torch.ones_like(one_minus))


def _neg_log_eps(log_value: Tensor) -> Tensor:
    """``−log(exp(log_value) + 1e−20)`` without leaving log space."""
    return -torch.logaddexp(log_value, torch.full_like(log_value, LOG_EPS))


def annotated_terms(grid_logits: Tensor, annotation: Tensor, *, balanced: bool = True) -> Tensor:
    """``L_A(x, k)`` of Eq. 2 for every image and label, ``[B, K]`` (module doc)."""
    g = grid_logits.flatten(2)
    b = annotation.flatten(2).to(torch.bool)
    if b.shape != g.shape:
        raise ValueError(
            f"annotation {tuple(annotation.shape)} != logits {tuple(grid_logits.shape)}"
        )
    if balanced:
        n_pos = b.sum(-1, keepdim=True)
        one_minus_pos = balanced_low(n_pos, g.dtype)
        one_minus_neg = balanced_low(g.shape[-1] - n_pos, g.dtype)
    else:
        # a Python scalar: a tensor made here would be a host-to-device copy every step
        one_minus_pos = one_minus_neg = 1.0 - RANGE_LOW
    # Select before the log: log f_{L+}(p) = log1p(−(1 − L+) σ(−g)) for annotated cells,
    # log f_{L−}(1 − p) = log1p(−(1 − L−) σ(g)) for the others. Computing both and selecting
    # after the log would give NaN gradients: the branch not taken can be log1p(−1) = −inf
    # (n = 0 gives 1 − L = 1, and σ saturates to 1 in float32 for |g| > ~17), and
    # torch.where's zero gradient times its infinite derivative is NaN.
    shrink = torch.where(b, one_minus_pos * torch.sigmoid(-g), one_minus_neg * torch.sigmoid(g))
    log_product = torch.log1p(-shrink).sum(-1)
    return _neg_log_eps(log_product)


def unannotated_terms(grid_logits: Tensor, labels: Tensor) -> Tensor:
    """``y L_U+ + (1 − y) L_U−`` (Eqs. 3–4) for every image and label, ``[B, K]``."""
    log_complement = torch.log1p(-(1.0 - RANGE_LOW) * torch.sigmoid(grid_logits)).flatten(2).sum(-1)
    positive = -torch.log(-torch.expm1(log_complement) + EPS)  # −log(C + ε)
    negative = _neg_log_eps(log_complement)  # −log(1 − C + ε)
    return torch.where(labels.to(torch.bool), positive, negative)


def mil_loss(
    grid_logits: Tensor,
    labels: Tensor,
    annotation: Tensor,
    annotated: Tensor,
    *,
    lambda_a: float = 3.0,
    balanced: bool = True,
    label_mask: Tensor | None = None,
) -> Tensor:
    """The MIL loss ``L_I`` of Eq. 5: a sum over the batch and the labels (module doc).

    ``grid_logits`` float ``[B, K, G, G]``; ``labels`` {0, 1} ``[B, K]`` (used for unannotated
    images only, as in the reference); ``annotation`` bool ``[B, K, G, G]`` (the grid target,
    max-pooled and thresholded); ``annotated`` bool ``[B]``. ``balanced`` selects the balanced
    range normalisation in the annotated product. ``label_mask`` (bool ``[B, K]``, optional):
    False leaves that image-label term out — an unknown label, or a positive label of an
    annotated image without localization (empty windows; docs/method.md#losses).
    """
    if grid_logits.dim() != 4:
        raise ValueError(f"grid_logits must be [B, K, G, G], not {tuple(grid_logits.shape)}")
    if labels.shape != grid_logits.shape[:2]:
        raise ValueError(f"labels {tuple(labels.shape)} != [B, K] {tuple(grid_logits.shape[:2])}")
    if annotated.shape != grid_logits.shape[:1]:
        raise ValueError(f"annotated must be [B], not {tuple(annotated.shape)}")
    flag = annotated.to(torch.bool)[:, None].expand_as(labels)
    terms = torch.where(
        flag,
        lambda_a * annotated_terms(grid_logits, annotation, balanced=balanced),
        unannotated_terms(grid_logits, labels),
    )
    if label_mask is not None:
        terms = torch.where(label_mask.to(torch.bool), terms, torch.zeros_like(terms))
    return terms.sum()


def decoder_loss(
    decoder_logits: Tensor,
    target: Tensor,
    mask: Tensor,
    *,
    binary: bool = False,
    threshold: float = 0.15,
) -> Tensor:
    """The decoder loss ``L_T`` of Eq. 6, before ``λ_T``.

    ``decoder_logits`` and ``target`` ``[B, K, H, W]`` (target in [0, 1]: the heatmap max-pooled
    to the decoder size, or ellipse masks); ``mask`` bool ``[B, K]``: annotated and positive.

    * ``binary=False`` (the reference): soft target; masked-out channels get logit 0 (a
      constant ``log 2`` per pixel, no gradient); the mean is over all ``B·K·H·W`` entries.
    * ``binary=True`` (the paper): target ``> threshold``; the mean is over the pixels of the
      masked channels only.

    0 (still connected to the graph) when no channel is masked in.
    """
    if decoder_logits.shape != target.shape or decoder_logits.dim() != 4:
        raise ValueError(
            f"decoder logits {tuple(decoder_logits.shape)} and target {tuple(target.shape)} "
            "must both be [B, K, H, W]"
        )
    if mask.shape != decoder_logits.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} must be [B, K]")
    # no data-dependent branch or shape: the loss never waits for the device
    weight = mask.to(decoder_logits.dtype)[:, :, None, None]
    target = target.to(decoder_logits.dtype)
    if binary:
        binary_target = (target > threshold).to(decoder_logits.dtype)
        per_pixel = F.binary_cross_entropy_with_logits(
            decoder_logits, binary_target, reduction="none"
        )
        weights = weight.expand_as(per_pixel)
        return (per_pixel * weights).sum() / weights.sum().clamp_min(1.0)
    soft = F.binary_cross_entropy_with_logits(decoder_logits * weight, target)
    return torch.where(weight.any(), soft, torch.zeros_like(soft))


def total_loss(mil: Tensor, decoder: Tensor | None, *, lambda_t: float = 300.0) -> Tensor:
    """Eq. 7: ``L = L_I + λ_T L_T`` (``L_T`` None: the model has no decoder)."""
    return mil if decoder is None else mil + lambda_t * decoder
