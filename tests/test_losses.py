"""Losses of docs/method.md#losses against hand-computed values, extremes and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from gazeloc.model import image_probabilities
from gazeloc.model.losses import decoder_loss, mil_loss, total_loss

LN3, LN9 = math.log(3.0), math.log(9.0)
# logits whose sigmoids are 0.5, 0.75 / 0.25, 0.9
G22 = [[0.0, LN3], [-LN3, LN9]]
P22 = [[0.5, 0.75], [0.25, 0.9]]
B22 = [[True, False], [False, True]]


def _g(values, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)[None, None]  # [1, 1, G, G]


def _single(g, b, y=1.0, annotated=True, **kwargs) -> float:
    return float(
        mil_loss(
            _g(g),
            torch.tensor([[y]], dtype=torch.float64),
            torch.tensor(b)[None, None],
            torch.tensor([annotated]),
            lambda_a=1.0,
            **kwargs,
        )
    )


def test_annotated_unbalanced_2x2():
    # b=1 cells: 0.98 + 0.02 p; b=0 cells: 0.98 + 0.02 (1 − p)
    product = (
        (0.98 + 0.02 * 0.5) * (0.98 + 0.02 * 0.9) * (0.98 + 0.02 * 0.25) * (0.98 + 0.02 * 0.75)
    )
    assert product == pytest.approx(0.99 * 0.998 * 0.985 * 0.995)
    expected = -math.log(product + 1e-20)
    assert _single(G22, B22, balanced=False) == pytest.approx(expected, rel=1e-12)


def test_annotated_balanced_2x2():
    low = 0.0056738 ** (1 / 2)  # two positive and two negative cells
    assert low == pytest.approx(0.0753246, abs=1e-6)
    product = (
        (low + (1 - low) * 0.5)
        * (low + (1 - low) * 0.9)
        * (low + (1 - low) * (1 - 0.75))
        * (low + (1 - low) * (1 - 0.25))
    )
    assert _single(G22, B22, balanced=True) == pytest.approx(-math.log(product), rel=1e-12)


def test_annotated_balanced_3x3_uneven_counts():
    g = [[0.0, LN3, -LN3], [LN9, 0.0, -LN9], [LN3, LN3, 0.0]]
    p = [[0.5, 0.75, 0.25], [0.9, 0.5, 0.1], [0.75, 0.75, 0.5]]
    b = [[True, False, False], [False, False, False], [False, False, False]]
    low_pos, low_neg = 0.0056738, 0.0056738 ** (1 / 8)
    product = low_pos + (1 - low_pos) * p[0][0]
    for i in range(3):
        for j in range(3):
            if not b[i][j]:
                product *= low_neg + (1 - low_neg) * (1 - p[i][j])
    assert _single(g, b, balanced=True) == pytest.approx(-math.log(product), rel=1e-12)
    # an unannotated label on an annotated image: n− = 9, every cell pushed to negative
    low9 = 0.0056738 ** (1 / 9)
    product9 = math.prod(low9 + (1 - low9) * (1 - v) for row in p for v in row)
    none = [[False] * 3 for _ in range(3)]
    assert _single(g, none, y=1.0, balanced=True) == pytest.approx(-math.log(product9), rel=1e-12)


def test_unannotated_2x2_positive_and_negative():
    complement = math.prod(1 - 0.02 * v for row in P22 for v in row)
    c = 1 - complement
    assert _single(G22, B22, y=1.0, annotated=False) == pytest.approx(-math.log(c + 1e-20))
    assert _single(G22, B22, y=0.0, annotated=False) == pytest.approx(
        -math.log(complement + 1e-20), rel=1e-12
    )
    # the annotation is ignored for unannotated images
    assert _single(G22, [[False] * 2] * 2, y=1.0, annotated=False) == pytest.approx(-math.log(c))
    probs = image_probabilities(_g(G22))
    assert float(probs[0, 0]) == pytest.approx(c, rel=1e-12)


def test_sum_over_batch_and_labels_with_lambda_and_mask():
    torch.manual_seed(0)
    g = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    ann = torch.rand(3, 2, 3, 3) > 0.6
    annotated = torch.tensor([True, False, True])
    parts = [
        [
            mil_loss(
                g[i : i + 1, k : k + 1],
                labels[i : i + 1, k : k + 1],
                ann[i : i + 1, k : k + 1],
                annotated[i : i + 1],
                lambda_a=1.0,
            )
            for k in range(2)
        ]
        for i in range(3)
    ]
    total = mil_loss(g, labels, ann, annotated, lambda_a=3.0)
    expected = sum((3.0 if annotated[i] else 1.0) * parts[i][k] for i in range(3) for k in range(2))
    assert float(total) == pytest.approx(float(expected), rel=1e-12)
    mask = torch.tensor([[True, False], [True, True], [False, True]])
    masked = mil_loss(g, labels, ann, annotated, lambda_a=3.0, label_mask=mask)
    expected_masked = sum(
        (3.0 if annotated[i] else 1.0) * parts[i][k]
        for i in range(3)
        for k in range(2)
        if mask[i, k]
    )
    assert float(masked) == pytest.approx(float(expected_masked), rel=1e-12)


@pytest.mark.parametrize("balanced", [True, False])
def test_no_underflow_at_extremes_float32(balanced):
    g = torch.full((2, 10, 32, 32), -60.0, requires_grad=True)
    labels = torch.ones(2, 10)
    ann = torch.zeros(2, 10, 32, 32, dtype=torch.bool)
    ann[:, :, :4, :4] = True  # 16 positive cells, all predicted negative
    annotated = torch.tensor([True, False])
    loss = mil_loss(g, labels, ann, annotated, lambda_a=1.0, balanced=balanced)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(g.grad).all()
    per_label = loss.item() / 10
    # unannotated positive with p ≈ 0: C = 0 → −log(1e−20)
    unannotated = -math.log(1e-20)
    if balanced:  # the product of the 16 positive factors bottoms out at 0.0056738
        annotated_term = -math.log(0.0056738)
    else:
        annotated_term = -16 * math.log(0.98)
    assert per_label == pytest.approx(unannotated + annotated_term, rel=1e-4)
    # a confident all-positive grid on a negative unannotated image: 1024 · −log 0.98
    g2 = torch.full((1, 1, 32, 32), 60.0, requires_grad=True)
    loss2 = mil_loss(
        g2, torch.zeros(1, 1), torch.zeros(1, 1, 32, 32, dtype=torch.bool), torch.tensor([False])
    )
    loss2.backward()
    assert loss2.item() == pytest.approx(-1024 * math.log(0.98), rel=1e-5)
    assert torch.isfinite(g2.grad).all()


@pytest.mark.parametrize("value", [-60.0, 60.0])
def test_saturated_logits_with_empty_or_full_annotation_have_finite_gradients(value):
    """A label of an annotated image with no annotated cell (n+ = 0, 1 − L+ = 1) or with every
    cell annotated (n− = 0): the factor that is not used would be log(0) for saturated logits;
    it must not leak NaN into the gradient (a NaN loss in training, seen on the demo)."""
    g = torch.full((1, 3, 4, 4), value, requires_grad=True)
    ann = torch.zeros(1, 3, 4, 4, dtype=torch.bool)
    ann[0, 1] = True  # every cell
    ann[0, 2, 0, 0] = True  # one cell
    loss = mil_loss(g, torch.tensor([[0.0, 1.0, 1.0]]), ann, torch.tensor([True]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(g.grad).all()
    # label 0 (no annotated cell): 16 negative factors at their floor or 1
    label0 = 0.0 if value < 0 else -math.log(0.0056738)
    # label 1 (all 16 annotated): the positive product at its floor or 1
    label1 = -math.log(0.0056738) if value < 0 else 0.0
    expected = 3.0 * (label0 + label1)
    parts = mil_loss(
        g.detach()[:, :2], torch.tensor([[0.0, 1.0]]), ann[:, :2], torch.tensor([True])
    )
    assert float(parts) == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_small_probabilities_keep_precision():
    # p = 1e−12 in every cell: C ≈ 0.02 · 1e−12 · 4 exactly, not 0
    g = torch.full((1, 1, 2, 2), math.log(1e-12), dtype=torch.float32)
    c = image_probabilities(g)
    assert float(c) == pytest.approx(4 * 0.02 * 1e-12, rel=1e-4)


@pytest.mark.parametrize("balanced", [True, False])
def test_mil_gradcheck(balanced):
    torch.manual_seed(1)
    g = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    ann = torch.rand(3, 2, 3, 3) > 0.5
    annotated = torch.tensor([True, False, True])
    assert torch.autograd.gradcheck(
        lambda x: mil_loss(x, labels, ann, annotated, lambda_a=3.0, balanced=balanced), (g,)
    )


def test_decoder_soft_hand_computed():
    h = torch.tensor([[[[0.0, 1.0], [-2.0, 3.0]], [[5.0, 5.0], [5.0, 5.0]]]], dtype=torch.float64)
    t = torch.tensor([[[[0.0, 0.5], [1.0, 0.2]], [[1.0, 1.0], [0.0, 0.0]]]], dtype=torch.float64)
    mask = torch.tensor([[True, False]])

    def bce(logit, target):
        p = 1 / (1 + math.exp(-logit))
        return -(target * math.log(p) + (1 - target) * math.log(1 - p))

    channel0 = sum(
        bce(h[0, 0, i, j].item(), t[0, 0, i, j].item()) for i in range(2) for j in range(2)
    )
    expected = (channel0 + 4 * math.log(2)) / 8  # masked channel: logit 0, still in the mean
    assert float(decoder_loss(h, t, mask)) == pytest.approx(expected, rel=1e-12)
    # binary (paper): target > 0.15, mean over the masked channel's 4 pixels only
    binary = [[0.0, 1.0], [1.0, 1.0]]
    expected_b = (
        sum(bce(h[0, 0, i, j].item(), binary[i][j]) for i in range(2) for j in range(2)) / 4
    )
    assert float(decoder_loss(h, t, mask, binary=True)) == pytest.approx(expected_b, rel=1e-12)


def test_decoder_no_positive_annotated_channel_is_zero():
    h = torch.randn(2, 10, 4, 4, requires_grad=True)
    loss = decoder_loss(h, torch.rand(2, 10, 4, 4), torch.zeros(2, 10, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(h.grad) == 0


@pytest.mark.parametrize("binary", [False, True])
def test_decoder_gradcheck_and_masked_channels_get_no_gradient(binary):
    torch.manual_seed(2)
    h = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    t = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    assert torch.autograd.gradcheck(lambda x: decoder_loss(x, t, mask, binary=binary), (h,))
    decoder_loss(h, t, mask, binary=binary).backward()
    assert torch.count_nonzero(h.grad[~mask]) == 0
    assert torch.count_nonzero(h.grad[mask]) > 0


def test_total_loss():
    assert float(total_loss(torch.tensor(2.0), torch.tensor(0.01), lambda_t=300)) == pytest.approx(
        5.0
    )
    assert float(total_loss(torch.tensor(2.0), None)) == 2.0


def test_bad_shapes():
    g = torch.zeros(2, 10, 4, 4)
    with pytest.raises(ValueError, match="labels"):
        mil_loss(g, torch.zeros(2, 9), torch.zeros_like(g, dtype=torch.bool), torch.ones(2).bool())
    with pytest.raises(ValueError, match="annotated"):
        mil_loss(g, torch.zeros(2, 10), torch.zeros_like(g, dtype=torch.bool), torch.ones(3).bool())
    with pytest.raises(ValueError, match="annotation"):
        mil_loss(
            g, torch.zeros(2, 10), torch.zeros(2, 10, 2, 2, dtype=torch.bool), torch.ones(2).bool()
        )
    with pytest.raises(ValueError, match="mask"):
        decoder_loss(g, g, torch.ones(2, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="target"):
        decoder_loss(g, torch.zeros(2, 10, 8, 8), torch.ones(2, 10, dtype=torch.bool))
