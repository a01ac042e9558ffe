"""The training loop: next-item prediction with full softmax cross-entropy (SASRec+, Klenitskiy &
Vasilev 2023) or a sampled softmax, early stopping on held-out last items, a time budget.

Reproducible on one device and thread count: every random draw comes from ``seed``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from tastebud.recipes.base import IntArray, ProgressFn
from tastebud.recipes.sequential.distributed import Forward, Team, current_team, direct
from tastebud.recipes.sequential.heap import large_blocks_kept
from tastebud.recipes.sequential.loss import softmax_cross_entropy
from tastebud.recipes.sequential.model import SequenceTransformer
from tastebud.recipes.sequential.tokens import (
    PAD,
    TYPE,
    VALUE,
    Events,
    Sequences,
    inputs_with_request,
)

_log = logging.getLogger(__name__)

NDCG_DEPTH = 10
# Batches are built from shuffled pools this many batches large, sorted by length inside, so a
# batch holds similar lengths and is trimmed to little padding (the pool keeps randomness).
POOL_BATCHES = 32
# linear warm-up over this many steps (at most a tenth of the plan), then cosine decay
WARMUP_STEPS = 200


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation options; see ``SequentialConfig`` for their meaning and bounds."""

    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    patience: int
    negatives: int
    exclude_seen: bool  # the window's earlier items are no negatives (full softmax only)
    older_windows: float  # share of the not-latest windows drawn for each epoch
    time_budget_seconds: float | None
    device: torch.device
    seed: int
    intent_weight: float = 0.0  # lambda of the intent heads' losses
    precision: torch.dtype = torch.float32  # bfloat16: autocast and bf16 loss products


@dataclass
class Validation:
    """Held-out last tokens of U users: the latest history tokens, right-padded and followed
    by the request slot, their feature codes, the lengths, the items each user saw (to exclude
    from the ranking) and the target items."""

    users: IntArray  # (U,) the sequences held out
    tokens: Tensor  # (U, T + 1)
    features: Tensor | None  # (U, T + 1, C)
    lengths: Tensor  # (U,)
    seen_indptr: Tensor  # (U + 1,) user u saw seen_items[seen_indptr[u]:seen_indptr[u + 1]]
    seen_items: Tensor  # (n_seen,) item indexes
    targets: Tensor  # (U,) item indexes

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class EpochLog:
    epoch: int
    loss: float
    ndcg: float
    seconds: float


@dataclass
class TrainReport:
    best_epoch: int = 0
    best_ndcg: float = -1.0
    epochs: list[EpochLog] = field(default_factory=list)
    stopped: str = "epochs"


def hold_out_last(
    sequences: Sequences,
    features: IntArray,
    *,
    n_users: int,
    max_len: int,
    rng: np.random.Generator,
) -> tuple[Sequences, IntArray, Validation | None]:
    """Take the last token of up to ``n_users`` random users with >= 3 tokens as validation
    targets; return the sequences and ``(n_tokens, C)`` token features without them, and the
    validation set (whose request slot holds the target's features known before it)."""
    lengths = sequences.lengths
    eligible = np.flatnonzero(lengths >= 3)
    if n_users == 0 or len(eligible) == 0:
        return sequences, features, None
    chosen = np.sort(rng.choice(eligible, size=min(n_users, len(eligible)), replace=False))
    held = sequences.indptr[chosen + 1] - 1
    keep = np.ones(len(sequences.tokens), dtype=bool)
    keep[held] = False
    shortened = np.where(np.isin(np.arange(len(lengths)), chosen), lengths - 1, lengths)
    indptr = np.zeros_like(sequences.indptr)
    np.cumsum(shortened, out=indptr[1:])
    remaining = Sequences(indptr, sequences.tokens[keep], sequences.repeats[keep], Events())
    kept = np.flatnonzero(keep)  # remaining token i is sequences' token kept[i]
    rows = np.concatenate([kept[indptr[u] : indptr[u + 1]] for u in chosen])
    histories = Sequences(
        np.concatenate([[0], np.cumsum(shortened[chosen])]), sequences.tokens[rows],
        np.zeros(0, np.int32),
    )  # fmt: skip
    requests = features[held].copy()
    if requests.shape[1]:
        requests[:, [TYPE, VALUE]] = 0  # the target's own type and value are not known yet
    tokens, rows_features, history_lengths = inputs_with_request(
        histories, features[rows], requests, max_len
    )
    validation = Validation(
        users=chosen.astype(np.int32),
        tokens=torch.from_numpy(tokens.astype(np.int64)),
        features=torch.from_numpy(rows_features) if features.shape[1] else None,
        lengths=torch.from_numpy(history_lengths),
        seen_indptr=torch.from_numpy(histories.indptr),
        seen_items=torch.from_numpy(histories.tokens - 1).long(),
        targets=torch.from_numpy(sequences.tokens[held] - 1).long(),
    )
    return remaining, features[keep], validation


def batches(lengths: IntArray, batch_size: int, rng: np.random.Generator) -> Iterator[IntArray]:
    """Window indexes in batches of similar length, shuffled (see ``POOL_BATCHES``)."""
    order = rng.permutation(len(lengths))
    pool = batch_size * POOL_BATCHES
    groups = []
    for low in range(0, len(order), pool):
        chunk = order[low : low + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        groups += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    for index in rng.permutation(len(groups)):
        yield groups[index]


def next_item_loss(
    model: SequenceTransformer,
    window: Tensor,
    features: Tensor | None,
    table: Tensor,
    sampling: Tensor,
    *,
    negatives: int,
    generator: torch.Generator,
    exclude_seen: bool = False,
    intent_weight: float = 0.0,
    products: torch.dtype = torch.float32,
) -> Tensor:
    """Mean cross-entropy of each token's next item over a (B, T + 1) window batch (with its
    (B, T + 1, C) token features).

    ``sampling`` (I,) is the negative-sampling distribution; items with probability 0 (cold
    items: they were never available) are never negatives. ``negatives`` 0 means the full
    softmax over every other item; otherwise that many items drawn from ``sampling``, shared by
    the batch, with the logQ correction of sampled softmax (Bengio & Senecal 2008).
    ``exclude_seen`` (full softmax without the genre head): the items before each position in
    its window are not negatives there, as serving excludes a user's history from the answer.
    With intent heads, ``intent_weight`` x their losses is added (see ``intent.py``).
    ``products`` is the dtype of the full softmax's matrix products (see ``loss.py``).
    """
    inputs, targets = window[:, :-1], window[:, 1:]  # (B, T) each
    mask = targets != PAD
    encoded = model.encode(inputs, table, features)  # (B, T, D)
    states = encoded[mask]  # (N, D)
    target = targets[mask] - 1  # (N,) item index
    intent = None if model.intent is None else model.intent(states)
    query, genre_logits = model.heads(states, intent)
    items = table[1:]  # (I, D)
    genre = model.genre if genre_logits is not None else None
    # log(0) = -inf drops the items that can never be negatives, log(1) = 0 keeps the rest
    available = torch.log((sampling > 0).float())  # (I,)
    if negatives == 0 and genre is not None:
        logits = query @ items.T + genre.bias(genre_logits) + available  # type: ignore[arg-type]
        loss = F.cross_entropy(logits.float(), target)
    elif negatives == 0:
        excluded = seen_before(inputs, len(items))[mask] if exclude_seen else None
        loss = softmax_cross_entropy(query, items, target, available, excluded, products)
    else:
        sampled = torch.multinomial(sampling, negatives, replacement=True, generator=generator)
        log_q = torch.log(sampling)
        positive = (query * items[target]).sum(-1) - log_q[target]  # (N,)
        negative = query @ items[sampled].T - log_q[sampled]  # (N, K)
        if genre is not None:
            own = genre.bias(genre_logits, target)  # type: ignore[arg-type]  # (N, N)
            positive = positive + own.diagonal()
            negative = negative + genre.bias(genre_logits, sampled)  # type: ignore[arg-type]
        # a negative that is the target itself is no negative; -inf drops it from the sum
        negative = negative.masked_fill(sampled[None, :] == target[:, None], float("-inf"))
        # cross-entropy with the positive first, without concatenating (N, K + 1) logits
        loss = (torch.logaddexp(positive, torch.logsumexp(negative, 1)) - positive).mean()
    if genre is not None and genre_logits is not None:  # multi-label: the next item's values
        labels = genre.targets(target)
        loss = loss + F.binary_cross_entropy_with_logits(genre_logits.float(), labels)
    if model.offsets is not None:  # the items after the next one (multitoken.py)
        seen = seen_before(inputs, len(items)) if exclude_seen and negatives == 0 else None
        loss = loss + model.offsets.loss(
            encoded, window, items, available, seen=seen, sampling=sampling,
            negatives=negatives, generator=generator,
        )  # fmt: skip
    if intent is not None and model.intent is not None:
        types = None if features is None else features[:, 1:, TYPE][mask]
        loss = loss + intent_weight * model.intent.loss(intent, target, types)
    return loss


def seen_before(inputs: Tensor, n_items: int) -> Tensor:
    """(B, T) input tokens -> (B, T, I): True where the item is among the row's tokens up to
    and including position t."""
    batch, length = inputs.shape
    causal = torch.ones(length, length, dtype=torch.bool, device=inputs.device).tril()
    earlier = inputs[:, None, :] * causal  # (B, T, T): token s at row t when s <= t, else pad
    seen = torch.zeros(batch, length, n_items + 1, dtype=torch.bool, device=inputs.device)
    seen.scatter_(2, earlier, True)
    return seen[..., 1:]


@torch.no_grad()
def validation_ndcg(
    model: SequenceTransformer, validation: Validation, device: torch.device | None = None
) -> float:
    """NDCG@10 of the held-out tokens, full ranking, each user's history excluded (the
    evaluation protocol's metric; ties count in the target's favour)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    table = model.items()
    total = 0.0
    for low in range(0, len(validation), 512):
        high = min(low + 512, len(validation))
        tokens = validation.tokens[low:high, :-1].to(device)
        features = None if validation.features is None else validation.features[low:high]
        states = model.encode(tokens, table, None if features is None else features.to(device))
        last = validation.lengths[low:high].to(device) - 1
        scores = model.logits(states[torch.arange(high - low), last], table).float()  # (U, I)
        first, stop = validation.seen_indptr[low], validation.seen_indptr[high]
        rows = torch.repeat_interleave(
            torch.arange(high - low), validation.seen_indptr[low : high + 1].diff()
        )
        scores[rows.to(device), validation.seen_items[first:stop].to(device)] = float("-inf")
        target = validation.targets[low:high].to(device)
        rank = (scores > scores.gather(1, target[:, None])).sum(1)  # 0 = best
        total += float(torch.where(rank < NDCG_DEPTH, 1 / torch.log2(rank + 2.0), 0.0).sum())
    model.train(was_training)
    return total / max(len(validation), 1)


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 products natively (else they are emulated, slower
    than float32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def learning_rate(peak: float, step: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of ``peak`` at step ``total`` (one-cycle shape)."""
    warmup = max(1, min(WARMUP_STEPS, total // 10))
    if step < warmup:
        return peak * (step + 1) / warmup
    decay = min((step - warmup) / max(total - warmup, 1), 1.0)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * decay)))


@dataclass
class _Run:
    """What one training run carries from step to step."""

    model: SequenceTransformer
    optimizer: torch.optim.Optimizer
    windows: IntArray  # (n_windows, T + 1) tokens
    features: IntArray | None  # (n_windows, T + 1, C) token features
    lengths: IntArray  # (n_windows,) real tokens per window
    latest: npt.NDArray[np.bool_]  # (n_windows,) the window ends its sequence
    sampling: Tensor  # (I,) negative-sampling distribution
    settings: TrainSettings
    rng: np.random.Generator
    generator: torch.Generator
    deadline: float  # perf_counter() value past which no step starts
    team: Team = field(default_factory=Team)  # the processes training together (distributed.py)
    forward: Forward = direct  # computes a step's loss (through DDP in a team)

    @property
    def steps_per_epoch(self) -> int:
        older = len(self.latest) - int(self.latest.sum())
        drawn = int(self.latest.sum()) + self.settings.older_windows * older
        return max(1, math.ceil(drawn / self.settings.batch_size))

    def epoch_windows(self) -> IntArray:
        """The windows one epoch trains on: every latest window, and each older one with
        probability ``older_windows`` (drawn afresh each epoch)."""
        drawn = self.rng.random(len(self.latest)) < self.settings.older_windows
        chosen: IntArray = np.flatnonzero(self.latest | drawn).astype(np.int32)
        return chosen


@large_blocks_kept()  # every step's (N, I) buffers reuse the heap (heap.py)
def train(
    model: SequenceTransformer,
    windows: IntArray,
    features: IntArray | None,
    validation: Validation | None,
    sampling: Tensor,
    settings: TrainSettings,
    progress: ProgressFn | None = None,
    *,
    latest: npt.NDArray[np.bool_] | None = None,
) -> TrainReport:
    """Fit ``model`` on ``(n_windows, T + 1)`` token windows (and their ``(n_windows, T + 1,
    C)`` features, None without); keep the best validation epoch. ``latest`` marks the windows
    that end a sequence (default: all), which every epoch trains on; the others are sampled
    (``settings.older_windows``).

    ``sampling`` (I,) is the negatives' distribution (see :func:`next_item_loss`). The plan of
    epochs shrinks (or grows back, up to ``settings.epochs``) to fit the time budget, so the
    learning-rate schedule still completes; a step never starts after the budget is spent.
    """
    started = time.perf_counter()
    budget = settings.time_budget_seconds
    team = current_team()
    run = _Run(
        model=model,
        # fused: one kernel for every parameter, 3x less optimizer time per step on CPU
        optimizer=torch.optim.AdamW(
            model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
            betas=(0.9, 0.98), fused=True,
        ),
        windows=windows, features=features, lengths=(windows != PAD).sum(1),
        latest=np.ones(len(windows), dtype=bool) if latest is None else latest,
        sampling=sampling.to(settings.device),
        settings=settings, rng=np.random.default_rng(settings.seed),
        generator=torch.Generator(device=settings.device).manual_seed(settings.seed),
        deadline=math.inf if budget is None else started + budget,
        team=team, forward=team.forward(model, windows),
    )  # fmt: skip
    report, planned = TrainReport(), settings.epochs
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(1, settings.epochs + 1):
        loss = run_epoch(run, epoch, planned)
        elapsed = time.perf_counter() - started
        ndcg = -1.0
        if validation is not None:
            ndcg = team.mean_over(validation, lambda v: validation_ndcg(model, v, settings.device))
        # every rank acts on rank 0's clock and figures: they all stop at the same epoch
        elapsed, ndcg = team.agree(elapsed, ndcg)
        report.epochs.append(EpochLog(epoch, loss, ndcg, elapsed))
        _log.info(
            "epoch done recipe=sequential epoch=%d loss=%.4f val_ndcg@10=%.4f seconds=%.1f",
            epoch, loss, ndcg, elapsed,
        )  # fmt: skip
        if progress is not None:
            progress(epoch / planned, f"epoch {epoch}/{planned} ndcg@10={ndcg:.4f}")
        if validation is None or ndcg > report.best_ndcg:
            report.best_epoch, report.best_ndcg = epoch, ndcg
            best_state = copy.deepcopy(model.state_dict())
        planned = _fit_budget(settings, planned, epoch, elapsed)
        if epoch - report.best_epoch >= settings.patience:
            report.stopped = "patience"
            break
        if epoch >= planned or team.any(time.perf_counter() > run.deadline):
            report.stopped = "epochs" if epoch == settings.epochs else "time budget"
            break
    model.load_state_dict(best_state)
    team.check_synced(model)
    model.eval()
    return report


def run_epoch(run: _Run, epoch: int, planned: int) -> float:
    """One pass over the windows in shuffled length-bucketed batches; the mean loss."""
    settings, device = run.settings, run.settings.device
    first = (epoch - 1) * run.steps_per_epoch
    amp = settings.precision == torch.bfloat16
    total, count = 0.0, 0
    chosen = run.epoch_windows()
    for step, picked in enumerate(batches(run.lengths[chosen], settings.batch_size, run.rng)):
        if run.team.any(time.perf_counter() > run.deadline):
            break
        index = run.team.shard(chosen[picked])
        rate = learning_rate(settings.lr, first + step, planned * run.steps_per_epoch)
        for group in run.optimizer.param_groups:
            group["lr"] = rate
        width = int(run.lengths[index].max())  # batches are trimmed to their longest window
        batch = torch.from_numpy(run.windows[index, :width].astype(np.int64)).to(device)
        features = None
        if run.features is not None:
            features = torch.from_numpy(run.features[index, :width]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = run.forward(partial(
                next_item_loss, run.model, batch, features, run.model.items(), run.sampling,
                negatives=settings.negatives, generator=run.generator,
                exclude_seen=settings.exclude_seen, intent_weight=settings.intent_weight,
                products=settings.precision,
            ))  # fmt: skip
        run.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
        run.optimizer.step()
        total, count = total + loss.item(), count + 1
    return total / max(count, 1)


def _fit_budget(settings: TrainSettings, planned: int, epoch: int, elapsed: float) -> int:
    """The epochs (at most ``settings.epochs``, at least ``epoch``) that fit in the time budget
    at the mean pace so far; re-estimated each epoch, as the machine's load changes."""
    if settings.time_budget_seconds is None:
        return planned
    affordable = max(int(settings.time_budget_seconds / (elapsed / epoch)), epoch)
    fits = min(settings.epochs, affordable)
    if fits != planned:
        _log.info(
            "time budget sets the plan recipe=sequential epochs=%d budget_seconds=%.0f",
            fits, settings.time_budget_seconds,
        )  # fmt: skip
    return fits
