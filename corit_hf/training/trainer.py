"""CoritTrainer: Sharpness-Aware Minimization inside `Trainer.training_step`, and layer-wise GSNR in the logs."""

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.utils import logging

from .gsnr import (
    ESTIMATORS,
    batch_size,
    gsnr_by_layer,
    microbatch_moments,
    per_sample_moments,
    trainable_parameters,
)
from .looksam import DEFAULT_ALPHA, AscentReuse


logger = logging.get_logger(__name__)


@dataclass
class CoritTrainingArguments(TrainingArguments):
    r"""
    [`TrainingArguments`] plus SAM and GSNR logging for [`CoritTrainer`].

    Args:
        sam_rho (`float`, *optional*, defaults to 0.05):
            Radius of the SAM ascent step. 0 is plain training, bit for bit the stock `Trainer`.
        sam_adaptive (`bool`, *optional*, defaults to `False`):
            Adaptive SAM (ASAM, Kwon et al. 2021): e_j = rho w_j^2 g_j / ||w * g|| instead of rho g / ||g||.
        sam_ascent_every (`int`, *optional*, defaults to 1):
            LookSAM's k (Liu et al. 2022): every k-th optimizer step takes the full two-pass SAM step, the others one
            forward/backward that reuses its ascent. 1 is plain two-pass SAM on every step.
        sam_reuse_alpha (`float`, *optional*, defaults to 0.7):
            LookSAM's alpha: the steps between full SAM steps use g + alpha (||g|| / ||v||) v.
        gsnr_every (`int`, *optional*, defaults to 0):
            Log `gsnr/<layer>` every this many optimizer steps (0 = never).
        gsnr_estimator (`str`, *optional*, defaults to `"microbatch"`):
            `"microbatch"` (chunk gradients gathered during the SAM ascent pass) or `"per_sample"` (exact, torch.func).
        gsnr_chunks (`int`, *optional*, defaults to 8):
            How many chunks a micro-batch is split into: the variance units of `microbatch` (at least 2), the vmap
            pieces (memory bound) of `per_sample`.
    """

    sam_rho: float = field(default=0.05, metadata={"help": "SAM radius rho; 0 trains exactly like the stock Trainer."})
    sam_adaptive: bool = field(
        default=False, metadata={"help": "Use adaptive SAM (ASAM): the ascent is scaled by the weights' magnitude."}
    )
    sam_ascent_every: int = field(
        default=1,
        metadata={
            "help": "LookSAM: a full SAM step every k optimizer steps, one pass reusing it in between (1 = SAM)."
        },
    )
    sam_reuse_alpha: float = field(
        default=DEFAULT_ALPHA, metadata={"help": "LookSAM: weight of the reused ascent component, relative to ||g||."}
    )
    gsnr_every: int = field(default=0, metadata={"help": "Log layer-wise GSNR every N optimizer steps (0 = off)."})
    gsnr_estimator: str = field(
        default="microbatch",
        metadata={
            "help": "GSNR estimator: chunk gradients of the ascent pass, or exact per-sample gradients.",
            "choices": list(ESTIMATORS),
        },
    )
    gsnr_chunks: int = field(
        default=8, metadata={"help": "Chunks per micro-batch for the GSNR estimators (microbatch: at least 2)."}
    )

    def __post_init__(self):
        if not (math.isfinite(self.sam_rho) and self.sam_rho >= 0):
            raise ValueError(f"sam_rho must be a finite number >= 0, got {self.sam_rho}.")
        if self.sam_ascent_every < 1:
            raise ValueError(
                f"sam_ascent_every must be >= 1 (1 = a full SAM step every step), got {self.sam_ascent_every}."
            )
        if not (math.isfinite(self.sam_reuse_alpha) and self.sam_reuse_alpha >= 0):
            raise ValueError(f"sam_reuse_alpha must be a finite number >= 0, got {self.sam_reuse_alpha}.")
        if self.gsnr_every < 0:
            raise ValueError(f"gsnr_every must be >= 0 (0 turns GSNR logging off), got {self.gsnr_every}.")
        if self.gsnr_estimator not in ESTIMATORS:
            raise ValueError(f"gsnr_estimator must be one of {ESTIMATORS}, got {self.gsnr_estimator!r}.")
        min_chunks = 2 if self.gsnr_estimator == "microbatch" else 1
        if self.gsnr_chunks < min_chunks:
            raise ValueError(
                f"gsnr_chunks must be >= {min_chunks} for the {self.gsnr_estimator} estimator, got {self.gsnr_chunks}."
            )
        super().__post_init__()


class CoritTrainer(Trainer):
    """
    A [`Trainer`] whose `training_step` takes a Sharpness-Aware Minimization (SAM) step and logs layer-wise GSNR.

    Works with any model that returns a loss. Per micro-batch: gradient g at w (no DDP sync: per-replica ascent),
    w <- w + e, the normal (synchronised) forward/backward at w + e, then w restored exactly. The stock optimizer,
    clipping, scheduler and gradient accumulation act on that SAM gradient. With `sam_ascent_every` = k > 1 only
    every k-th optimizer step does that; the others take one pass and reuse its ascent (LookSAM). DDP and
    single-device training are supported; DeepSpeed and FSDP are not (their gradients are not per-parameter `.grad`
    tensors of the full weights).
    """

    def __init__(self, model: nn.Module | None = None, args: CoritTrainingArguments | None = None, *pargs, **kwargs):
        if args is None:
            args = CoritTrainingArguments()
        if not isinstance(args, CoritTrainingArguments):
            raise TypeError(f"CoritTrainer needs CoritTrainingArguments, got {type(args).__name__}.")
        super().__init__(model, args, *pargs, **kwargs)
        if (self.args.sam_rho > 0 or self.args.gsnr_every > 0) and (self.is_deepspeed_enabled or self.is_fsdp_enabled):
            raise ValueError("SAM and GSNR logging support single-device and DDP training, not DeepSpeed or FSDP.")
        self.skipped_ascents = 0
        self._gsnr_step = -1
        looksam = self.args.sam_rho > 0 and self.args.sam_ascent_every > 1
        self.ascent_reuse = AscentReuse(self.args.sam_ascent_every, self.args.sam_reuse_alpha) if looksam else None

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """
        One SAM micro-batch step (the stock step when `sam_rho == 0` and no GSNR is due); returns the loss at w + e
        (at w on LookSAM's one-pass steps).

        With LookSAM (`sam_ascent_every` > 1) each replica computes its gradient without DDP sync and, on the last
        micro-batch of the optimizer step, keeps or reuses the ascent component, then the gradients are averaged
        over the replicas once, as DDP would.
        """
        gsnr_due = self._gsnr_due(inputs)
        reuse = self.ascent_reuse
        if reuse is None:
            return self._sam_micro_step(model, inputs, num_items_in_batch, gsnr_due, ascend=self.args.sam_rho > 0)
        ascend = reuse.is_ascent_step(self.state.global_step)
        with self.accelerator.no_sync(model):
            loss = self._sam_micro_step(model, inputs, num_items_in_batch, gsnr_due, ascend)
        if self.accelerator.sync_gradients:
            params = [param for param in model.parameters() if param.requires_grad]
            gradient = [param.grad for param in params]
            if ascend:
                reuse.finish_ascent(gradient, params)
            else:
                reuse.reuse(gradient)
            self._average_gradients_over_processes(params)
        return loss

    def _sam_micro_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        num_items_in_batch: torch.Tensor | int | None,
        gsnr_due: bool,
        ascend: bool,
    ) -> torch.Tensor:
        """
        The stock step, preceded by the GSNR pass when due and taken at w + e when `ascend`. Gradients from earlier
        micro-batches are stashed during the ascent pass and put back before the second pass, which accumulates onto
        them as usual, so DDP all-reduces the whole accumulated SAM gradient.
        """
        if not (ascend or gsnr_due):
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        inputs = self._prepare_inputs(inputs)
        params = [param for param in model.parameters() if param.requires_grad]
        stashed = [param.grad for param in params]
        for param in params:
            param.grad = None

        with self.accelerator.no_sync(model):
            gradient = self._gsnr_pass(model, inputs) if gsnr_due else None
            if ascend and gradient is None:
                self.accelerator.backward(self._mean_loss(model, inputs))
                gradient = [param.grad for param in params]
        ascended = self._ascend(params, gradient) if ascend else None
        if ascend and self.ascent_reuse is not None:
            self.ascent_reuse.accumulate_plain(gradient, params)

        for param, grad in zip(params, stashed):
            param.grad = grad
        loss = super().training_step(model, inputs, num_items_in_batch)
        if ascended is not None:
            with torch.no_grad():
                torch._foreach_copy_(*ascended)
        return loss

    @torch.no_grad()
    def _average_gradients_over_processes(self, params: Sequence[nn.Parameter]) -> None:
        """Average `.grad` over the data-parallel processes in one all-reduce (what DDP does when it syncs)."""
        processes = self.accelerator.num_processes
        if processes <= 1:
            return
        for param in params:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
        grads = [param.grad for param in params]
        flat = torch.cat([grad.reshape(-1) for grad in grads])
        dist.all_reduce(flat)
        flat.div_(processes)
        for grad, averaged in zip(grads, flat.split([grad.numel() for grad in grads])):
            grad.copy_(averaged.view_as(grad))

    def _looksam_state_file(self, checkpoint: str) -> str:
        """Each replica's LookSAM direction file in a checkpoint folder (the direction is per replica)."""
        name = "looksam.pt" if self.args.world_size <= 1 else f"looksam_{self.args.process_index}.pt"
        return os.path.join(checkpoint, name)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        """The stock optimizer and scheduler states, plus LookSAM's direction when it is on."""
        super()._save_optimizer_and_scheduler(output_dir)
        if self.ascent_reuse is not None:
            os.makedirs(output_dir, exist_ok=True)
            torch.save(self.ascent_reuse.state_dict(), self._looksam_state_file(output_dir))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """The stock states, plus LookSAM's direction (without one, the next step is a full SAM step)."""
        super()._load_optimizer_and_scheduler(checkpoint)
        if self.ascent_reuse is None or checkpoint is None:
            return
        path = self._looksam_state_file(checkpoint)
        if not os.path.isfile(path):
            logger.warning(f"LookSAM: {path} not found; the next optimizer step takes a full SAM step.")
            return
        self.ascent_reuse.load_state_dict(torch.load(path, map_location=self.args.device, weights_only=True))

    def _gsnr_due(self, inputs: dict[str, Any]) -> bool:
        """GSNR is due on the first micro-batch of every `gsnr_every`-th optimizer step (batches of 2+ samples)."""
        every = self.args.gsnr_every
        step = self.state.global_step
        return every > 0 and step % every == 0 and step != self._gsnr_step and batch_size(inputs) >= 2

    def _mean_loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """The batch's mean loss through `compute_loss`, as `training_step` computes it before any GA scaling."""
        with self.compute_loss_context_manager():
            loss = self.compute_loss(model, dict(batch))
        return loss.mean() if self.args.n_gpu > 1 else loss

    def _backward_gradients(self, loss: torch.Tensor, params: Sequence[nn.Parameter]) -> list[torch.Tensor | None]:
        """`accelerator.backward` (so mixed-precision loss scaling applies), then take the gradients out of `.grad`."""
        self.accelerator.backward(loss)
        grads = [param.grad for param in params]
        for param in params:
            param.grad = None
        return grads

    def _gsnr_pass(self, model: nn.Module, inputs: dict[str, Any]) -> list[torch.Tensor]:
        """
        Estimate and log `gsnr/<layer>` (averaged over processes); returns the estimator's mean gradient at w, which
        serves as the ascent direction. It runs on a forked RNG, so dropout in the rest of training draws exactly
        what it would without GSNR; chunks are drawn with a generator seeded by seed + step (same on resume).
        """
        self._gsnr_step = self.state.global_step
        unwrapped = self.accelerator.unwrap_model(model)
        device = self.args.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if self.args.gsnr_estimator == "per_sample":
                moments = per_sample_moments(unwrapped, self._mean_loss, inputs, self.args.gsnr_chunks)
            else:
                moments = microbatch_moments(
                    model,
                    self._mean_loss,
                    inputs,
                    self.args.gsnr_chunks,
                    gradients=self._backward_gradients,
                    generator=torch.Generator().manual_seed(self.args.seed + self.state.global_step),
                )
        names, _ = trainable_parameters(unwrapped)
        values = gsnr_by_layer(moments, names)
        mean_values = self.accelerator.reduce(
            torch.tensor(list(values.values()), device=self.args.device), reduction="mean"
        )
        self.log({f"gsnr/{layer}": value for layer, value in zip(values, mean_values.tolist())})
        return moments.mean

    @torch.no_grad()
    def _ascend(
        self, params: list[nn.Parameter], gradient: Sequence[torch.Tensor | None]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
        """
        w <- w + e, e = rho g / ||g|| (ASAM: rho w^2 g / ||w g||); returns (weights, copies) to restore, or None
        when the ascent is skipped because ||g|| is not finite (counted in `skipped_ascents` and logged) or zero.
        """
        pairs = [(param, grad.to(param.dtype)) for param, grad in zip(params, gradient) if grad is not None]
        if not pairs:
            return None
        weights, grads = (list(group) for group in zip(*pairs))
        scaled = torch._foreach_mul(grads, weights) if self.args.sam_adaptive else grads
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(scaled))).item()
        if not math.isfinite(norm):
            self.skipped_ascents += 1
            logger.warning(f"SAM: non-finite gradient norm at step {self.state.global_step}; ascent skipped.")
            self.log({"sam/skipped_ascents": self.skipped_ascents})
            return None
        if norm == 0:
            return None
        if self.args.sam_adaptive:
            torch._foreach_mul_(scaled, weights)
        copies = [weight.detach().clone() for weight in weights]
        torch._foreach_add_(weights, scaled, alpha=self.args.sam_rho / norm)
        return weights, copies


__all__ = ["CoritTrainer", "CoritTrainingArguments"]
