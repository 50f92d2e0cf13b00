"""CoritTrainer: SAM exactness against a hand-written reference, rho=0 == Trainer, resume, DDP, GSNR logs, bf16."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel, Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from corit_hf import CoritConfig, CoritForImageClassification
from corit_hf.training.trainer import CoritTrainer, CoritTrainingArguments


REPO_ROOT = Path(__file__).resolve().parents[1]


class ToyConfig(PreTrainedConfig):
    model_type = "corit_toy_regressor"

    def __init__(self, dim: int = 4, hidden: int = 8, dropout: float = 0.0, **kwargs):
        self.dim = dim
        self.hidden = hidden
        self.dropout = dropout
        super().__init__(**kwargs)


class PoisonGradient(torch.autograd.Function):
    """Identity forward, NaN gradient backward: a non-finite gradient with a finite loss."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


class ToyRegressor(PreTrainedModel):
    """tanh MLP with a mean squared error; forward calls listed in `poisoned_calls` get NaN gradients."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.hidden = nn.Linear(config.dim, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden, 1)
        self.poisoned_calls: set[int] = set()
        self.calls = 0
        self.post_init()

    def forward(self, x, labels=None):
        prediction = self.out(self.dropout(torch.tanh(self.hidden(x)))).squeeze(-1)
        if self.training:
            if self.calls in self.poisoned_calls:
                prediction = PoisonGradient.apply(prediction)
            self.calls += 1
        loss = None if labels is None else nn.functional.mse_loss(prediction, labels)
        return SequenceClassifierOutput(loss=loss, logits=prediction)


class ToyRegressorWithLossKwargs(ToyRegressor):
    """A `**kwargs` forward that honours `num_items_in_batch` (sum / count), as transformers' LM losses do."""

    def forward(self, x, labels=None, **kwargs):
        prediction = self.out(torch.tanh(self.hidden(x))).squeeze(-1)
        squared = (prediction - labels) ** 2
        count = kwargs.get("num_items_in_batch")
        loss = squared.sum() / count if count is not None else squared.mean()
        return SequenceClassifierOutput(loss=loss, logits=prediction)


def toy_model(cls: type[ToyRegressor] = ToyRegressor, dropout: float = 0.0) -> ToyRegressor:
    torch.manual_seed(0)
    return cls(ToyConfig(dropout=dropout))


def toy_dataset(size: int = 16) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(size, 4, generator=generator)
    y = torch.sin(x.sum(dim=1)) + 0.1 * torch.randn(size, generator=generator)
    return [{"x": x[i], "labels": y[i]} for i in range(size)]


def image_dataset(size: int = 16) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(2)
    pixels = torch.randn(size, 3, 64, 64, generator=generator)
    labels = torch.arange(size) % 2
    pixels[labels == 1, :, ::2, ::2] += 1.0  # a learnable high-frequency "forgery" cue
    return [{"pixel_values": pixels[i], "labels": labels[i]} for i in range(size)]


def tiny_corit() -> CoritForImageClassification:
    torch.manual_seed(0)
    return CoritForImageClassification(CoritConfig.from_preset("tiny"))


def common_args(output_dir: Path, **overrides) -> dict:
    args = {
        "output_dir": str(output_dir),
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "per_device_train_batch_size": 4,
        "max_steps": 3,
        "logging_steps": 1,
        "save_strategy": "no",
        "seed": 0,
        "dataloader_num_workers": 0,
    }
    return {**args, **overrides}


def sgd_args(output_dir: Path, **overrides) -> dict:
    """Plain SGD, constant lr, no clipping, data in order: what the reference SAM implements by hand."""
    return common_args(
        output_dir,
        optim="sgd",
        learning_rate=0.1,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        train_sampling_strategy="sequential",
        **overrides,
    )


def flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def reference_sam(
    model: nn.Module,
    dataset: list[dict[str, torch.Tensor]],
    steps: int,
    batch: int,
    accumulation: int,
    lr: float,
    rho: float,
    adaptive: bool,
    plain_steps: tuple[int, ...] = (),
    ascent_every: int = 1,
    alpha: float = 0.7,
) -> None:
    """
    Two-pass SAM per micro-batch (Foret et al.; ASAM: Kwon et al.), SAM gradients averaged, then SGD. With
    `ascent_every` = k > 1, LookSAM (Liu et al. 2022): on steps k, 2k, ... keep v = g_s - proj_g(g_s) of the step's
    averaged SAM and plain gradients; the other steps descend along g + alpha ||g|| / ||v|| v.
    """
    params = list(model.parameters())
    model.train()
    v = None
    for step in range(steps):
        full_step = step % ascent_every == 0
        total = [torch.zeros_like(p) for p in params]
        plain = [torch.zeros_like(p) for p in params]
        for micro in range(accumulation):
            start = (step * accumulation + micro) * batch
            samples = dataset[start : start + batch]
            inputs = {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
            saved = [p.detach().clone() for p in params]
            grads = torch.autograd.grad(model(**inputs).loss, params)
            plain = [t + g / accumulation for t, g in zip(plain, grads)]
            if not full_step:
                total = plain
                continue
            if step not in plain_steps:
                with torch.no_grad():
                    scaled = [p * g for p, g in zip(params, grads)] if adaptive else grads
                    norm = torch.sqrt(sum((s**2).sum() for s in scaled))
                    for p, s in zip(params, scaled):
                        p += rho * (p * s if adaptive else s) / norm
            grads = torch.autograd.grad(model(**inputs).loss, params)
            with torch.no_grad():
                for p, original in zip(params, saved):
                    p.copy_(original)
            total = [t + g / accumulation for t, g in zip(total, grads)]
        if full_step:
            g, g_s = flat(plain), flat(total)
            v = g_s - (g_s @ g) / (g @ g) * g
        else:
            g = flat(plain)
            scale = alpha * g.norm() / v.norm()
            total = [t + scale * piece.view_as(t) for t, piece in zip(total, v.split([t.numel() for t in total]))]
        with torch.no_grad():
            for p, t in zip(params, total):
                p -= lr * t


def assert_same_weights(a: nn.Module, b: nn.Module, atol: float | None = None) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        if atol is None:
            assert torch.equal(x, y), name
        else:
            torch.testing.assert_close(x, y, atol=atol, rtol=0, msg=name)


@pytest.mark.parametrize("gsnr_every", [0, 1])
def test_rho_zero_is_the_stock_trainer_bit_for_bit(tmp_path, gsnr_every):
    """AdamW, clipping, warmup + linear decay, accumulation, shuffled data, dropout: identical weights, GSNR or not."""
    stock = dict(
        per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=4, warmup_steps=1, max_grad_norm=0.5
    )
    plain = toy_model(dropout=0.2)
    Trainer(plain, TrainingArguments(**common_args(tmp_path / "plain", **stock)), train_dataset=toy_dataset()).train()
    corit = toy_model(dropout=0.2)
    args = CoritTrainingArguments(**common_args(tmp_path / "corit", **stock), sam_rho=0.0, gsnr_every=gsnr_every)
    trainer = CoritTrainer(corit, args, train_dataset=toy_dataset())
    trainer.train()
    assert_same_weights(plain, corit)
    gsnr_logs = [entry for entry in trainer.state.log_history if "gsnr/hidden" in entry]
    assert len(gsnr_logs) == (4 if gsnr_every else 0)
    assert all(set(entry) >= {"gsnr/hidden", "gsnr/out"} for entry in gsnr_logs)


@pytest.mark.parametrize(
    "model_cls, accumulation, adaptive",
    [
        (ToyRegressor, 1, False),
        (ToyRegressor, 2, False),
        (ToyRegressor, 1, True),
        (ToyRegressorWithLossKwargs, 2, False),
    ],
    ids=["sam", "sam-accumulation", "asam", "sam-accumulation-loss-kwargs"],
)
def test_sam_matches_reference(tmp_path, model_cls, accumulation, adaptive):
    rho, steps = 0.5, 2
    dataset = toy_dataset()
    model = toy_model(model_cls)
    args = CoritTrainingArguments(
        **sgd_args(tmp_path, max_steps=steps, gradient_accumulation_steps=accumulation),
        sam_rho=rho,
        sam_adaptive=adaptive,
    )
    CoritTrainer(model, args, train_dataset=dataset).train()
    reference = toy_model(model_cls)
    reference_sam(reference, dataset, steps, 4, accumulation, lr=0.1, rho=rho, adaptive=adaptive)
    assert_same_weights(model, reference, atol=1e-6)
    assert not torch.allclose(model.out.weight, toy_model().out.weight)


@pytest.mark.parametrize(
    "accumulation, adaptive", [(1, False), (2, False), (1, True)], ids=["looksam", "looksam-accumulation", "asam"]
)
def test_looksam_matches_reference(tmp_path, accumulation, adaptive):
    """k = 3 over 5 steps: full SAM steps 0 and 3, the others reuse the ascent component."""
    rho, steps = 0.5, 5
    dataset = toy_dataset(40)
    model = toy_model()
    args = CoritTrainingArguments(
        **sgd_args(tmp_path, max_steps=steps, gradient_accumulation_steps=accumulation),
        sam_rho=rho,
        sam_adaptive=adaptive,
        sam_ascent_every=3,
    )
    CoritTrainer(model, args, train_dataset=dataset).train()
    reference = toy_model()
    reference_sam(reference, dataset, steps, 4, accumulation, 0.1, rho, adaptive, ascent_every=3, alpha=0.7)
    assert_same_weights(model, reference, atol=1e-6)
    sam = toy_model()
    reference_sam(sam, dataset, steps, 4, accumulation, 0.1, rho, adaptive)
    assert not torch.allclose(model.out.weight, sam.out.weight, atol=1e-4)


def test_non_finite_gradient_skips_the_ascent(tmp_path):
    model = toy_model()
    model.poisoned_calls = {2}  # the ascent pass of step 1 (each step runs two forwards)
    args = CoritTrainingArguments(**sgd_args(tmp_path), sam_rho=0.5)
    trainer = CoritTrainer(model, args, train_dataset=toy_dataset())
    trainer.train()
    assert trainer.skipped_ascents == 1
    skips = [entry for entry in trainer.state.log_history if "sam/skipped_ascents" in entry]
    assert [(entry["step"], entry["sam/skipped_ascents"]) for entry in skips] == [(1, 1)]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    reference = toy_model()
    reference_sam(reference, toy_dataset(), 3, 4, 1, lr=0.1, rho=0.5, adaptive=False, plain_steps=(1,))
    assert_same_weights(model, reference, atol=1e-6)


def test_a_skipped_ascent_reaches_tensorboard(tmp_path, monkeypatch):
    """`sam/` values go through `Trainer.log`, so the trackers' callbacks get them."""
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "logs"))
    model = toy_model()
    model.poisoned_calls = {2}
    args = CoritTrainingArguments(**sgd_args(tmp_path, report_to="tensorboard"), sam_rho=0.5)
    CoritTrainer(model, args, train_dataset=toy_dataset()).train()
    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    assert [(event.step, event.value) for event in events.Scalars("train/sam/skipped_ascents")] == [(1, 1.0)]


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    """CoRIT tiny, AdamW, shuffled data, accumulation, GSNR: 2N steps == N steps, checkpoint, N more (N = 1)."""
    overrides = dict(max_steps=2, gradient_accumulation_steps=2, save_strategy="steps", save_steps=1)
    full = tiny_corit()
    args = CoritTrainingArguments(**common_args(tmp_path, **overrides), sam_rho=0.1, gsnr_every=1)
    CoritTrainer(full, args, train_dataset=image_dataset()).train()
    resumed = tiny_corit()
    args = CoritTrainingArguments(**common_args(tmp_path / "resumed", **overrides), sam_rho=0.1, gsnr_every=1)
    CoritTrainer(resumed, args, train_dataset=image_dataset()).train(resume_from_checkpoint=tmp_path / "checkpoint-1")
    assert_same_weights(full, resumed)


def test_looksam_resumed_mid_cycle_equals_uninterrupted_run(tmp_path):
    """k = 3, CoRIT tiny, AdamW, shuffled data, accumulation, GSNR: resumed at step 2, which reuses step 0's ascent."""
    overrides = dict(max_steps=4, gradient_accumulation_steps=2, save_strategy="steps", save_steps=2)
    looksam = dict(sam_rho=0.1, sam_ascent_every=3, gsnr_every=1)
    full = tiny_corit()
    args = CoritTrainingArguments(**common_args(tmp_path, **overrides), **looksam)
    CoritTrainer(full, args, train_dataset=image_dataset()).train()
    assert (tmp_path / "checkpoint-2" / "looksam.pt").is_file()
    resumed = tiny_corit()
    args = CoritTrainingArguments(**common_args(tmp_path / "resumed", **overrides), **looksam)
    CoritTrainer(resumed, args, train_dataset=image_dataset()).train(resume_from_checkpoint=tmp_path / "checkpoint-2")
    assert_same_weights(full, resumed)


@pytest.mark.parametrize("estimator, max_steps, logged_steps", [("microbatch", 3, [0, 2]), ("per_sample", 1, [0])])
def test_trainer_logs_layer_gsnr(tmp_path, estimator, max_steps, logged_steps):
    args = CoritTrainingArguments(
        **common_args(tmp_path, max_steps=max_steps),
        sam_rho=0.05,
        gsnr_every=2,
        gsnr_estimator=estimator,
        gsnr_chunks=4,
    )
    trainer = CoritTrainer(tiny_corit(), args, train_dataset=image_dataset())
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if any(key.startswith("gsnr/") for key in entry)]
    assert [entry["step"] for entry in logs] == logged_steps
    expected = {"gsnr/embeddings", "gsnr/head"} | {f"gsnr/layer_{i:02d}" for i in range(4)}
    for entry in logs:
        gsnr = {key: value for key, value in entry.items() if key.startswith("gsnr/")}
        assert set(gsnr) == expected
        assert all(value >= 0 and value == value for value in gsnr.values())


@pytest.mark.parametrize("ascent_every, steps", [(1, 1), (2, 2)], ids=["sam", "looksam"])
def test_bf16_autocast_on_cpu_runs_a_sam_step(tmp_path, ascent_every, steps):
    model = tiny_corit()
    before = model.classifier.weight.detach().clone()
    args = CoritTrainingArguments(
        **common_args(tmp_path, max_steps=steps, per_device_train_batch_size=2, bf16=True),
        sam_rho=0.05,
        sam_ascent_every=ascent_every,
    )
    trainer = CoritTrainer(model, args, train_dataset=image_dataset())
    output = trainer.train()
    assert torch.isfinite(torch.tensor(output.training_loss))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not torch.equal(before, model.classifier.weight)
    assert trainer.skipped_ascents == 0
    assert ascent_every == 1 or trainer.ascent_reuse.direction is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("ascent_every", [1, 3], ids=["sam", "looksam"])
def test_torchrun_two_processes_hold_identical_weights(tmp_path, ascent_every):
    """DDP (gloo, CPU), accumulation, SAM (or LookSAM, k = 3) and GSNR: both replicas end with the same weights."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(REPO_ROOT / "tests" / "_ddp_worker.py"),
        str(tmp_path),
        str(ascent_every),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2))
    initial = tiny_corit().state_dict()
    assert any(not torch.equal(rank0[name], initial[name]) for name in rank0)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name


@pytest.mark.parametrize(
    "field, value",
    [
        ("sam_rho", -0.1),
        ("sam_rho", float("nan")),
        ("gsnr_every", -1),
        ("gsnr_estimator", "exact"),
        ("gsnr_chunks", 1),
        ("sam_ascent_every", 0),
        ("sam_reuse_alpha", -1.0),
    ],
)
def test_invalid_arguments_name_the_field(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        CoritTrainingArguments(output_dir=str(tmp_path), **{field: value})


def test_plain_training_arguments_are_rejected(tmp_path):
    with pytest.raises(TypeError, match="CoritTrainingArguments"):
        CoritTrainer(toy_model(), TrainingArguments(output_dir=str(tmp_path), report_to="none"))
