"""GSNR estimators: closed-form linear regression, per_sample vs microbatch on CoRIT, layer grouping."""

import pytest
import torch
from torch import nn

from corit_hf import CoritConfig, CoritForImageClassification
from corit_hf.training.gsnr import layer_groups, layer_gsnr, microbatch_moments


def squared_error(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return 0.5 * (model(batch["x"]).squeeze(-1) - batch["y"]).square().mean()


@pytest.mark.parametrize("estimator, chunks", [("per_sample", 4), ("microbatch", 1024)])
def test_linear_regression_matches_closed_form(estimator, chunks):
    """
    y = w*.x + noise, x ~ N(0, I), loss (w.x - y)^2 / 2 at w = w* + d: the per-sample gradient (d.x - noise) x has
    mean d and variance |d|^2 + d_j^2 + s^2 (Isserlis), so GSNR_j = d_j^2 / (|d|^2 + d_j^2 + s^2).
    """
    generator = torch.Generator().manual_seed(0)
    dim, size, noise = 8, 32768, 0.5
    w_star = torch.randn(dim, generator=generator)
    d = torch.linspace(-1.0, 1.0, dim) + 0.3
    model = nn.Linear(dim, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_((w_star + d).unsqueeze(0))
    x = torch.randn(size, dim, generator=generator)
    batch = {"x": x, "y": x @ w_star + noise * torch.randn(size, generator=generator)}
    expected = (d.square() / (d.square().sum() + d.square() + noise**2)).mean().item()
    result = layer_gsnr(model, squared_error, batch, estimator=estimator, chunks=chunks)
    assert set(result) == {"weight"}
    assert result["weight"] == pytest.approx(expected, rel=0.10)
    assert model.weight.grad is None


def test_estimators_agree_on_tiny_corit():
    """
    One sample per chunk, `microbatch` is algebraically `per_sample` (rel 1e-4). With k = 16 random chunks its
    variance is unbiased but has only k - 1 = 15 degrees of freedom, so mean^2 / variance is biased up by
    (k - 1) / (k - 3) = 15/13 (inverse chi-square); after that factor the two agree per layer within 25%.
    """
    torch.manual_seed(0)
    model = CoritForImageClassification(CoritConfig.from_preset("tiny"))
    labels = torch.arange(32) % 2
    pixels = torch.randn(32, 3, 64, 64)
    pixels[labels == 1, :, ::2, ::2] += 1.0
    batch = {"pixel_values": pixels, "labels": labels}
    per_sample = layer_gsnr(model, None, batch, estimator="per_sample", chunks=4)
    assert list(per_sample) == ["embeddings", "layer_00", "layer_01", "layer_02", "layer_03", "head"]
    assert all(value > 0 for value in per_sample.values())
    one_per_chunk = layer_gsnr(model, None, batch, estimator="microbatch", chunks=32)
    assert one_per_chunk == pytest.approx(per_sample, rel=1e-4)
    sixteen_chunks = layer_gsnr(model, None, batch, estimator="microbatch", chunks=16)
    assert sixteen_chunks == pytest.approx({k: v * 15 / 13 for k, v in per_sample.items()}, rel=0.25)


def test_unequal_chunks_average_to_the_batch_gradient():
    """Chunks of 4, 3 and 3 samples: the size-weighted mean of chunk gradients is the batch-mean gradient."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
    batch = {"x": torch.randn(10, 3), "y": torch.randn(10)}
    moments = microbatch_moments(model, lambda m, b: squared_error(m, b), batch, chunks=3)
    expected = torch.autograd.grad(squared_error(model, batch), list(model.parameters()))
    for mean, grad in zip(moments.mean, expected):
        torch.testing.assert_close(mean, grad)


def test_layer_groups_understand_clip_blocks():
    names = [name for name, _ in CoritForImageClassification(CoritConfig.from_preset("tiny")).named_parameters()]
    groups = {layer: [names[i] for i in members] for layer, members in layer_groups(names).items()}
    assert list(groups) == ["embeddings", "layer_00", "layer_01", "layer_02", "layer_03", "head"]
    assert all(name.startswith(("backbone.embeddings.", "backbone.pre_layrnorm.")) for name in groups["embeddings"])
    assert all(name.startswith("backbone.encoder.layers.2.") for name in groups["layer_02"])
    assert {name.rsplit(".", 1)[0] for name in groups["head"]} == {"backbone.post_layernorm", "classifier"}


def test_layer_groups_fall_back_to_top_level_modules():
    names = ["module.stem.weight", "module.stem.bias", "module.stages.0.weight", "module.fc.weight", "scale"]
    assert layer_groups(names) == {"stem": [0, 1], "stages": [2], "fc": [3], "scale": [4]}


def test_unknown_estimator_is_rejected():
    with pytest.raises(ValueError, match="estimator"):
        layer_gsnr(nn.Linear(2, 1), squared_error, {"x": torch.randn(4, 2), "y": torch.randn(4)}, estimator="exact")
