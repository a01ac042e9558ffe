"""Softmax cross-entropy over an item table, fused with its logits (in the spirit of Liger's
and Apple's "cut cross-entropy" kernels, on plain torch ops).

``F.cross_entropy(query @ items.T, target)`` is most of a training step on a few-thousand-item
catalogue: the (N, I) logits are written, log-softmaxed, then in backward a zero-filled one-hot
gradient and a second exponential pass are made over them. Here the forward turns the logits
into probabilities in place and keeps them; the backward subtracts 1 at each target and does the
two matrix products. Same values and gradients; a full 64 x 128-token step on ml-1m-seq went
from 0.50 to 0.31 s on two cores.

With ``products=torch.bfloat16`` the three matrix products take bfloat16 operands, while the
softmax, the loss and the gradients' sums stay float32. Where the CPU has native bf16
(AVX512-BF16, AMX) the products take half the time, but converting the logits and their
gradient gives back most of it: 171 against 195 ms for the loss at N = 8,192 on two cores.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx


class _SoftmaxCrossEntropy(torch.autograd.Function):
    # under CUDA autocast the logits and their softmax stay float32 (bf16 loses the tail)
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)  # type: ignore[untyped-decorator]
    def forward(
        ctx: FunctionCtx,
        query: Tensor,
        items: Tensor,
        bias: Tensor | None,
        target: Tensor,
        excluded: Tensor | None,
        products: torch.dtype,
    ) -> Tensor:
        query, items = query.to(products), items.to(products)
        logits = _logits(query, items, bias)  # (N, I) float32
        rows = torch.arange(len(target), device=target.device)
        chosen = logits[rows, target]  # (N,)
        if excluded is not None:
            logits.masked_fill_(excluded, -torch.inf)
            logits[rows, target] = chosen
        peak = logits.amax(1, keepdim=True)
        probabilities = logits.sub_(peak).exp_()  # in place: the logits are not needed again
        total = probabilities.sum(1, keepdim=True)
        probabilities.div_(total)
        loss = (total.log_().squeeze(1) + peak.squeeze(1) - chosen).mean()
        ctx.save_for_backward(query, items, probabilities, target)
        return loss

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")  # type: ignore[untyped-decorator]
    def backward(
        ctx: Any, grad: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None, None, None, None]:
        query, items, probabilities, target = ctx.saved_tensors
        # d loss / d logits = (softmax - one_hot) / N; the saved buffer is used once, in place
        rows = torch.arange(len(target), device=target.device)
        probabilities[rows, target] -= 1.0
        probabilities.mul_(grad / len(target))
        gradient = probabilities.to(items.dtype)  # the logits' gradient, as the products take it
        grad_query = (gradient @ items).float() if ctx.needs_input_grad[0] else None
        grad_items = (gradient.T @ query).float() if ctx.needs_input_grad[1] else None
        return grad_query, grad_items, None, None, None, None


def _logits(query: Tensor, items: Tensor, bias: Tensor | None) -> Tensor:
    if query.dtype == torch.float32:
        return query @ items.T if bias is None else torch.addmm(bias, query, items.T)
    logits = (query @ items.T).float()
    return logits if bias is None else logits.add_(bias)


def softmax_cross_entropy(
    query: Tensor,
    items: Tensor,
    target: Tensor,
    bias: Tensor | None = None,
    excluded: Tensor | None = None,
    products: torch.dtype = torch.float32,
) -> Tensor:
    """Mean of ``F.cross_entropy(query @ items.T + bias, target)``: (N, D) queries, (I, D)
    items, (N,) target rows of ``items``, optional (I,) additive logit bias (``-inf`` drops an
    item) and (N, I) items ``excluded`` from each row's softmax (never its target). Computed in
    float32, but for the matrix products' operands (``products``)."""
    if bias is not None:
        bias = bias.float()
    with torch.autocast(query.device.type, enabled=False):  # the dtypes are chosen here
        loss: Tensor = _SoftmaxCrossEntropy.apply(  # type: ignore[no-untyped-call]
            query.float(), items.float(), bias, target, excluded, products
        )
    return loss
