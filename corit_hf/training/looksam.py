"""LookSAM (Liu et al., CVPR 2022): SAM at close to the price of one forward/backward per step.

Every k-th optimizer step takes the full two-pass SAM step and keeps v, the part of the SAM gradient g_s orthogonal
to the plain gradient g at the same weights: v = g_s - (<g_s, g> / ||g||^2) g. The k - 1 steps in between take one
forward/backward and step on g + alpha (||g|| / ||v||) v. Only v's direction enters, so it is kept as the unit
vector v / ||v||: the reuse is then independent of loss scaling (mixed precision, gradient accumulation).
"""

import math
from collections.abc import Sequence

import torch
from torch import nn


DEFAULT_ALPHA = 0.7
"""LookSAM's alpha, as in the paper's experiments and the public reimplementations."""


def global_norm(tensors: Sequence[torch.Tensor]) -> float:
    """The L2 norm of all tensors together, as a Python float (accumulated in float32 or wider)."""
    if not tensors:
        return 0.0
    return torch.linalg.vector_norm(torch.stack([norm.float() for norm in torch._foreach_norm(tensors)])).item()


def inner_product(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """<a, b> over all tensor pairs, in float32."""
    return torch.stack([torch.dot(x.float().flatten(), y.float().flatten()) for x, y in zip(a, b)]).sum().item()


def orthogonal_direction(
    sam_gradient: Sequence[torch.Tensor], plain_gradient: Sequence[torch.Tensor]
) -> list[torch.Tensor] | None:
    """The unit vector along v = g_s - (<g_s, g> / ||g||^2) g, in float32; None when g or v is zero or not finite."""
    sam = [grad.float() for grad in sam_gradient]
    plain = [grad.float() for grad in plain_gradient]
    plain_norm = global_norm(plain)
    if not (math.isfinite(plain_norm) and plain_norm > 0):
        return None
    projection = inner_product(sam, plain) / plain_norm**2
    direction = torch._foreach_add(sam, plain, alpha=-projection)
    norm = global_norm(direction)
    if not (math.isfinite(norm) and norm > 0):
        return None
    torch._foreach_div_(direction, norm)
    return direction


class AscentReuse:
    """
    The state LookSAM carries between optimizer steps: the unit direction of v from the last full SAM step, and
    while a full step runs, the sum of its micro-batches' plain gradients.

    Args:
        every: k, a full SAM step every k-th optimizer step (and whenever no direction is known yet).
        alpha: the weight of the reused component, relative to ||g||.
    """

    def __init__(self, every: int, alpha: float = DEFAULT_ALPHA):
        self.every = every
        self.alpha = alpha
        self.direction: list[torch.Tensor] | None = None
        self._plain_sum: list[torch.Tensor] | None = None

    def is_ascent_step(self, step: int) -> bool:
        """Whether optimizer step `step` (0-based) takes the full two-pass SAM step."""
        return step % self.every == 0 or self.direction is None

    @torch.no_grad()
    def accumulate_plain(self, gradient: Sequence[torch.Tensor | None], params: Sequence[nn.Parameter]) -> None:
        """Add one micro-batch's plain gradient at w (the ascent direction); None counts as zeros."""
        grads = [
            torch.zeros_like(param, dtype=torch.float32) if grad is None else grad.detach().float()
            for grad, param in zip(gradient, params)
        ]
        if self._plain_sum is None:
            self._plain_sum = [grad.clone() for grad in grads]
        else:
            torch._foreach_add_(self._plain_sum, grads)

    @torch.no_grad()
    def finish_ascent(self, sam_gradient: Sequence[torch.Tensor | None], params: Sequence[nn.Parameter]) -> None:
        """
        At the end of a full SAM step: keep the direction of v from the step's SAM gradient (the accumulated
        `.grad`) and plain gradient. A zero or non-finite v (a skipped ascent, an fp16 overflow) keeps the old one.
        """
        plain, self._plain_sum = self._plain_sum, None
        if plain is None:
            return
        sam = [torch.zeros_like(param) if grad is None else grad for grad, param in zip(sam_gradient, params)]
        direction = orthogonal_direction(sam, plain)
        if direction is not None:
            self.direction = direction

    @torch.no_grad()
    def reuse(self, gradient: Sequence[torch.Tensor | None]) -> None:
        """g <- g + alpha ||g|| v / ||v||, in place on the accumulated `.grad` (parameters without one are left)."""
        pairs = [(grad, v) for grad, v in zip(gradient, self.direction) if grad is not None]
        if not pairs:
            return
        grads, direction = (list(group) for group in zip(*pairs))
        norm = global_norm(grads)
        if not math.isfinite(norm):
            return  # the step is lost anyway (the fp16 scaler skips it); do not spread the inf/nan
        torch._foreach_add_(grads, [v.to(grad.dtype) for grad, v in zip(grads, direction)], alpha=self.alpha * norm)

    def state_dict(self) -> dict:
        """What a checkpoint must keep so that a resumed run continues the cycle exactly."""
        return {"direction": self.direction}

    def load_state_dict(self, state: dict) -> None:
        self.direction = state["direction"]


__all__ = ["DEFAULT_ALPHA", "AscentReuse", "orthogonal_direction"]
