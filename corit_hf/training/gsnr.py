"""Layer-wise gradient signal-to-noise ratio (GSNR) of any torch model.

For parameter j with per-sample gradients g, GSNR_j = E[g_j]^2 / Var[g_j] (Liu et al., ICLR 2020); the GSNR of a
layer is the mean of GSNR_j over its parameters. Two estimators:

- `microbatch`: split the batch into k random chunks and take one gradient per chunk; the per-sample variance is
  chunk size x the variance of the chunk means (the one-way ANOVA between-chunk mean square, also for unequal
  chunks). Over random chunkings it is unbiased for the batch's per-sample variance even when the batch is
  stratified (e.g. class-balanced). Costs k forward/backward passes over the chunks, about one ordinary backward.
- `per_sample`: the exact per-sample gradients through `torch.func.vmap(torch.func.grad(...))`, a chunk of the batch
  at a time to bound memory.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..models.modeling_corit import BLOCK_PATTERN


GSNR_EPS = 1e-12
ESTIMATORS = ("microbatch", "per_sample")
WRAPPER_PREFIX = re.compile(r"^(?:module\.|_orig_mod\.|base_model\.model\.)+")

LossFn = Callable[[nn.Module, dict[str, Any]], torch.Tensor]
GradientsFn = Callable[[torch.Tensor, Sequence[nn.Parameter]], Sequence[torch.Tensor | None]]


def model_loss(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The default loss: what a transformers model returns as `.loss` for `model(**batch)`."""
    return model(**batch).loss


def autograd_gradients(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> Sequence[torch.Tensor | None]:
    """Gradients of `loss` without touching `.grad` (None for parameters the loss does not reach)."""
    return torch.autograd.grad(loss, params, allow_unused=True)


class GradientMoments:
    """
    Running per-parameter mean and sum of squared deviations of gradients, merged chunk by chunk (Chan et al.).

    `per_sample=True`: each update carries a chunk's per-sample mean and within-chunk squared deviations, and the
    variance is the per-sample sample variance. `per_sample=False`: each update is one chunk's mean gradient,
    weighted by its size, and the per-sample variance is the between-chunk estimate sum_c n_c (m_c - m)^2 / (k - 1).
    Statistics are kept in float32. Updates work in place, without allocating: the tensors passed in become the
    moments' storage or scratch space, so pass tensors you own (fresh gradients), not parameters' live `.grad`.
    """

    def __init__(self, per_sample: bool):
        self.per_sample = per_sample
        self.count = 0
        self.chunks = 0
        self.mean: list[torch.Tensor] = []
        self.m2: list[torch.Tensor] = []

    @torch.no_grad()
    def update(
        self,
        chunk_mean: Sequence[torch.Tensor | None],
        count: int,
        chunk_m2: Sequence[torch.Tensor] | None = None,
        like: Sequence[torch.Tensor] | None = None,
    ) -> None:
        """Merge one chunk of `count` samples; a None gradient (parameter not reached) is zeros shaped like `like`."""
        if (chunk_m2 is not None) != self.per_sample:
            raise ValueError("chunk_m2 must be given exactly when the moments are per sample.")
        like = like if like is not None else chunk_mean
        mean = [
            torch.zeros_like(ref, dtype=torch.float32) if g is None else g.float() for g, ref in zip(chunk_mean, like)
        ]
        m2 = [m.float() for m in chunk_m2] if chunk_m2 is not None else None
        total = self.count + count
        if self.chunks == 0:
            self.mean = mean
            self.m2 = m2 if m2 is not None else [torch.zeros_like(m) for m in mean]
        else:
            delta = mean
            torch._foreach_sub_(delta, self.mean)
            torch._foreach_add_(self.mean, delta, alpha=count / total)
            torch._foreach_addcmul_(self.m2, delta, delta, value=self.count * count / total)
            if m2 is not None:
                torch._foreach_add_(self.m2, m2)
        self.count = total
        self.chunks += 1

    @torch.no_grad()
    def gsnr_totals(self, eps: float = GSNR_EPS) -> list[torch.Tensor]:
        """
        Per parameter, the sum over its elements of GSNR_j = mean_j^2 / (variance_j + eps), with the unbiased
        per-sample variance; one parameter at a time, so the extra memory is one parameter's size. The eps turns
        0/0 (a gradient that is always zero) into 0.
        """
        dof = self.count - 1 if self.per_sample else self.chunks - 1
        if dof < 1:
            raise ValueError(f"GSNR needs at least two {'samples' if self.per_sample else 'chunks'}, got {dof + 1}.")
        return [(mean.square() / (m2 / dof + eps)).sum() for mean, m2 in zip(self.mean, self.m2)]


def layer_groups(names: Sequence[str]) -> dict[str, list[int]]:
    """
    Group parameter names by layer; values are indices into `names`.

    With transformer blocks (`<path>.<i>` for any of the backbones' `BLOCK_PATHS`: `encoder.layers`, `encoder.layer`,
    `model.layer`, `layers`, `blocks`), each block is `layer_<i>` (zero-padded), parameters registered before the
    first block (embeddings) form `embeddings` and all others (the final norm, classifier) form `head`. Otherwise
    each top-level module is a layer.
    """
    blocks = [BLOCK_PATTERN.search(name) for name in names]
    indices = [int(match.group(1)) for match in blocks if match]
    groups: dict[str, list[int]] = {}
    if not indices:
        for i, name in enumerate(names):
            groups.setdefault(WRAPPER_PREFIX.sub("", name).split(".")[0], []).append(i)
        return groups
    width = max(2, len(str(max(indices))))
    seen_block = False
    for i, match in enumerate(blocks):
        seen_block = seen_block or match is not None
        if match:
            layer = f"layer_{int(match.group(1)):0{width}d}"
        else:
            layer = "head" if seen_block else "embeddings"
        groups.setdefault(layer, []).append(i)
    return dict(sorted(groups.items(), key=lambda item: item[1][0]))


def gsnr_by_layer(moments: GradientMoments, names: Sequence[str], eps: float = GSNR_EPS) -> dict[str, float]:
    """Mean GSNR over the elements of each layer's parameters, `names` aligned with the moments."""
    totals = moments.gsnr_totals(eps)
    result = {}
    for layer, members in layer_groups(names).items():
        total = sum(totals[i] for i in members)
        result[layer] = float(total / sum(moments.mean[i].numel() for i in members))
    return result


def batch_size(batch: Mapping[str, Any]) -> int:
    """The leading dimension of the batch's first tensor."""
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return value.shape[0]
    raise ValueError("The batch holds no tensor with a batch dimension.")


def per_sample_keys(batch: Mapping[str, Any]) -> list[str]:
    """Keys of the tensors whose leading dimension is the batch size (the others are shared by all samples)."""
    size = batch_size(batch)
    return [k for k, v in batch.items() if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == size]


def split_batch(
    batch: Mapping[str, Any], chunks: int, generator: torch.Generator | None = None
) -> list[tuple[dict[str, Any], int]]:
    """
    Split the per-sample tensors into min(chunks, batch size) chunks whose sizes differ by at most one; with a
    `generator`, the samples are shuffled first so that chunks are random subsets.
    """
    size = batch_size(batch)
    sizes = [len(part) for part in torch.arange(size).tensor_split(min(chunks, size))]
    keys = per_sample_keys(batch)
    order = torch.randperm(size, generator=generator) if generator is not None else None
    pieces = {
        key: (batch[key] if order is None else batch[key][order.to(batch[key].device)]).split(sizes) for key in keys
    }
    return [({**batch, **{key: pieces[key][c] for key in keys}}, n) for c, n in enumerate(sizes)]


def trainable_parameters(model: nn.Module) -> tuple[list[str], list[nn.Parameter]]:
    """Names and tensors of the parameters that require a gradient, in registration order."""
    named = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    return [name for name, _ in named], [param for _, param in named]


def microbatch_moments(
    model: nn.Module,
    loss_fn: LossFn,
    batch: dict[str, Any],
    chunks: int,
    gradients: GradientsFn = autograd_gradients,
    generator: torch.Generator | None = None,
) -> GradientMoments:
    """
    Chunk-mean gradient moments: one `loss_fn` forward and one backward per random chunk.

    `loss_fn` must return the chunk's mean loss. `gradients(loss, params)` computes the gradients (the trainer passes
    one built on `accelerator.backward`). Chunks are drawn with `generator` (default: a fixed seed, so the result is
    reproducible and the global RNG untouched). The moments' mean is the gradient of the batch's mean loss.
    """
    _, params = trainable_parameters(model)
    moments = GradientMoments(per_sample=False)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    for chunk, count in split_batch(batch, chunks, generator):
        moments.update(gradients(loss_fn(model, chunk), params), count, like=params)
    return moments


class _BoundLoss(nn.Module):
    """`loss_fn(model, batch)` as a module, so `torch.func.functional_call` can swap the model's parameters."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.loss_fn(self.model, batch)


def per_sample_moments(model: nn.Module, loss_fn: LossFn, batch: dict[str, Any], chunks: int) -> GradientMoments:
    """
    Exact per-sample gradient moments with `torch.func`, vmapping one of `chunks` chunks at a time (memory grows
    with the chunk size times the number of parameters). `loss_fn` sees each sample as a batch of one.
    """
    names, params = trainable_parameters(model)
    bound = _BoundLoss(model, loss_fn)
    keys = per_sample_keys(batch)

    def sample_loss(weights: dict[str, torch.Tensor], sample: dict[str, torch.Tensor]) -> torch.Tensor:
        one = {**batch, **{key: value.unsqueeze(0) for key, value in sample.items()}}
        return torch.func.functional_call(bound, {f"model.{n}": w for n, w in weights.items()}, (one,))

    per_sample_grad = torch.func.vmap(torch.func.grad(sample_loss), in_dims=(None, 0), randomness="different")
    weights = {name: param.detach() for name, param in zip(names, params)}
    moments = GradientMoments(per_sample=True)
    for chunk, count in split_batch(batch, chunks):
        grads = per_sample_grad(weights, {key: chunk[key] for key in keys})
        grads = [grads[name].float() for name in names]
        means = [g.mean(dim=0) for g in grads]
        m2 = [(g - m).square().sum(dim=0) for g, m in zip(grads, means)]
        moments.update(means, count, m2)
    return moments


def layer_gsnr(
    model: nn.Module,
    loss_fn: LossFn | None,
    batch: dict[str, Any],
    estimator: str = "microbatch",
    chunks: int = 8,
    eps: float = GSNR_EPS,
) -> dict[str, float]:
    """
    GSNR of every layer of `model` on one batch, as `{layer: gsnr}` (layers as in [`layer_groups`]).

    Args:
        model: any torch module; its `.grad` fields are left untouched.
        loss_fn: `loss_fn(model, batch)` returns the mean loss of a batch; None uses `model(**batch).loss`.
        batch: a dict of tensors; those whose leading dimension is the batch size are split into samples/chunks.
        estimator: `"microbatch"` (k chunk gradients) or `"per_sample"` (exact, `torch.func`).
        chunks: k for `microbatch` (at least 2); for `per_sample`, how many pieces the batch is vmapped in.
        eps: added to the variance, so a gradient that is always zero has GSNR 0.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}.")
    loss_fn = loss_fn or model_loss
    compute = per_sample_moments if estimator == "per_sample" else microbatch_moments
    names, _ = trainable_parameters(model)
    return gsnr_by_layer(compute(model, loss_fn, batch, chunks), names, eps)


__all__ = [
    "ESTIMATORS",
    "GSNR_EPS",
    "GradientMoments",
    "batch_size",
    "gsnr_by_layer",
    "layer_groups",
    "layer_gsnr",
    "microbatch_moments",
    "model_loss",
    "per_sample_moments",
    "split_batch",
    "trainable_parameters",
]
