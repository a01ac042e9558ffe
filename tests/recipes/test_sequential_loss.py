"""The fused softmax cross-entropy gives torch's values and gradients; seen-item exclusion."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tastebud.recipes.sequential.loss import softmax_cross_entropy
from tastebud.recipes.sequential.train import seen_before


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(40, 8, generator=generator, requires_grad=True)
    items = torch.randn(25, 8, generator=generator, requires_grad=True)
    target = torch.randint(0, 24, (40,), generator=generator)
    return query, items, target


def test_matches_torch_cross_entropy_in_value_and_gradients() -> None:
    query, items, target = _inputs(0)
    fused = softmax_cross_entropy(query, items, target)
    fused.backward()
    fused_grads = query.grad.clone(), items.grad.clone()  # type: ignore[union-attr]
    query.grad = items.grad = None
    expected = F.cross_entropy(query @ items.T, target)
    expected.backward()
    assert torch.allclose(fused, expected, atol=1e-5)
    assert torch.allclose(fused_grads[0], query.grad, atol=1e-5)  # type: ignore[arg-type]
    assert torch.allclose(fused_grads[1], items.grad, atol=1e-5)  # type: ignore[arg-type]


def test_an_infinitely_negative_bias_drops_the_item() -> None:
    query, items, target = _inputs(1)
    bias = torch.zeros(25)
    bias[24] = -math.inf  # never a target in _inputs
    fused = softmax_cross_entropy(query, items, target, bias)
    fused.backward()
    expected = F.cross_entropy(query @ items[:24].T, target)
    assert torch.allclose(fused, expected, atol=1e-5)
    assert items.grad is not None and bool((items.grad[24] == 0).all())
    assert bool(torch.isfinite(query.grad).all())  # type: ignore[arg-type]


def test_excluded_items_leave_each_rows_softmax_but_never_its_target() -> None:
    query, items, target = _inputs(2)
    excluded = torch.zeros(40, 25, dtype=torch.bool)
    excluded[:, :5] = True  # the first five items are out of every row's softmax
    excluded[torch.arange(40), target] = True  # asking to drop the target does not drop it
    fused = softmax_cross_entropy(query, items, target, excluded=excluded)
    keep = ~excluded
    keep[torch.arange(40), target] = True
    logits = (query @ items.T).masked_fill(~keep, -math.inf)
    assert torch.allclose(fused, F.cross_entropy(logits, target), atol=1e-5)


def test_seen_before_marks_each_positions_earlier_items() -> None:
    inputs = torch.tensor([[3, 1, 3, 2, 0, 0]])  # token ids (item + 1), right-padded
    seen = seen_before(inputs, n_items=4)
    assert seen.shape == (1, 6, 4)
    assert seen[0, 0].tolist() == [False, False, True, False]  # item 2 (token 3) at t = 0
    assert seen[0, 1].tolist() == [True, False, True, False]
    assert seen[0, 3].tolist() == [True, True, True, False]
    assert seen[0, 5].tolist() == seen[0, 3].tolist()  # padding adds nothing


def test_bfloat16_products_keep_the_value_and_gradients_close() -> None:
    query, items, target = _inputs(3)
    exact = softmax_cross_entropy(query, items, target)
    exact_grads = torch.autograd.grad(exact, [query, items])
    low = softmax_cross_entropy(query, items, target, products=torch.bfloat16)
    low_grads = torch.autograd.grad(low, [query, items])
    assert low.dtype == torch.float32 and low_grads[0].dtype == torch.float32
    assert 0 < abs(low.item() - exact.item()) < 0.02 * exact.item()  # rounded: not fp32
    for got, expected in zip(low_grads, exact_grads, strict=True):
        assert float((got - expected).norm() / expected.norm()) < 0.02


def test_bfloat16_products_under_cpu_autocast_train_like_float32() -> None:
    query, items, target = _inputs(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the loss picks its own dtypes inside
        loss = softmax_cross_entropy(query * 1.0, items, target, products=torch.bfloat16)
    loss.backward()  # a gradient for every input, in the inputs' float32
    assert query.grad is not None and query.grad.dtype == torch.float32
    assert items.grad is not None and bool(torch.isfinite(items.grad).all())
