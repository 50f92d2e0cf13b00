"""CoritConfig / CoritForImageClassification: loading surfaces, mechanisms, fine-tuning modes, validation."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    pipeline,
)

from corit_hf import CoritConfig, CoritForImageClassification
from corit_hf.models.finetuning import apply_finetuning


TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}


def tiny_model(**config_kwargs) -> CoritForImageClassification:
    torch.manual_seed(0)
    return CoritForImageClassification(CoritConfig.from_preset("tiny", **config_kwargs)).eval()


def random_pixels(batch: int = 2, size: int = 64) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    model = tiny_model()
    path = tmp_path_factory.mktemp("corit") / "model"
    model.save_pretrained(path)
    return model, path


def test_save_pretrained_writes_safetensors_auto_map_code_and_processor(saved_model):
    _, path = saved_model
    files = set(os.listdir(path))
    assert {"model.safetensors", "config.json", "preprocessor_config.json"} <= files
    assert {"modeling_corit.py", "configuration_corit.py"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "corit"
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}
    processor = json.loads((path / "preprocessor_config.json").read_text())
    assert processor["crop_size"] == {"height": 64, "width": 64}


def test_round_trip_gives_identical_logits(saved_model):
    model, path = saved_model
    reloaded = CoritForImageClassification.from_pretrained(path).eval()
    pixels = random_pixels()
    with torch.no_grad():
        assert torch.equal(model(pixels).logits, reloaded(pixels).logits)


def test_remote_code_loads_in_a_fresh_process_without_corit_hf(saved_model, tmp_path):
    model, path = saved_model
    pixels = random_pixels()
    torch.save(pixels, tmp_path / "pixels.pt")
    Image.fromarray(np.full((40, 56, 3), 120, dtype=np.uint8)).save(tmp_path / "image.png")
    script = textwrap.dedent(
        f"""
        import json, sys, torch
        from PIL import Image
        from transformers import AutoModel, AutoModelForImageClassification, pipeline
        path = {str(path)!r}
        pixels = torch.load({str(tmp_path / "pixels.pt")!r})
        out = {{}}
        for name, auto in [("auto", AutoModel), ("auto_cls", AutoModelForImageClassification)]:
            model = auto.from_pretrained(path, trust_remote_code=True).eval()
            out[name] = model(pixels).logits.tolist()
            out[name + "_module"] = type(model).__module__
        classifier = pipeline("image-classification", model=path, trust_remote_code=True)
        out["pipeline"] = classifier(Image.open({str(tmp_path / "image.png")!r}))
        out["corit_hf_imported"] = "corit_hf" in sys.modules
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300, check=True
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["corit_hf_imported"]
    assert out["auto_module"].startswith("transformers_modules")
    with torch.no_grad():
        expected = model(pixels).logits
    for name in ("auto", "auto_cls"):
        torch.testing.assert_close(torch.tensor(out[name]), expected, rtol=0, atol=1e-6)
    assert {row["label"] for row in out["pipeline"]} == {"real", "fake"}
    assert math.isclose(sum(row["score"] for row in out["pipeline"]), 1.0, rel_tol=1e-5)


def test_registered_classes_load_without_remote_code(saved_model):
    model, path = saved_model
    assert isinstance(AutoConfig.from_pretrained(path), CoritConfig)
    for auto in (AutoModel, AutoModelForImageClassification):
        loaded = auto.from_pretrained(path, trust_remote_code=False)
        assert type(loaded) is CoritForImageClassification
    classifier = pipeline("image-classification", model=str(path))
    image = Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8))
    pixels = classifier.image_processor(image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        probabilities = model(pixels).logits.softmax(-1)[0]
    scores = {row["label"]: row["score"] for row in classifier(image)}
    assert scores["fake"] == pytest.approx(probabilities[1].item(), abs=1e-5)


@pytest.mark.parametrize("source", ["clip", "clip_vision"])
def test_from_clip_copies_the_vision_weights_exactly(tmp_path, source):
    torch.manual_seed(0)
    if source == "clip":
        text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4}
        clip = CLIPModel(CLIPConfig(vision_config=TINY_VISION, text_config=text, projection_dim=16))
        reference = clip.vision_model
    else:
        clip = reference = CLIPVisionModel(CLIPVisionConfig(**TINY_VISION))
    clip.save_pretrained(tmp_path / "clip")
    model = CoritForImageClassification.from_clip(tmp_path / "clip", rrm_keep_ratio=0.5)
    expected = reference.state_dict()
    copied = model.backbone.state_dict()
    assert expected.keys() == copied.keys()
    for key, tensor in expected.items():
        assert torch.equal(tensor, copied[key]), key
    assert model.config.rrm_keep_ratio == 0.5
    assert model.config.hri_layers == [1, 2, 3]


@pytest.mark.parametrize("ratio", [0.05, 0.25, 0.5, 1.0])
def test_rrm_keeps_ceil_ratio_times_n_patches(ratio):
    model = tiny_model(rrm_keep_ratio=ratio)
    with torch.no_grad():
        output = model(random_pixels(), output_region_scores=True)
    expected = math.ceil(ratio * 64)
    assert len(output.region_masks) == len(model.config.hri_layers)
    for mask, scores in zip(output.region_masks, output.region_scores):
        assert mask.shape == scores.shape == (2, 64)
        assert mask.sum(dim=1).tolist() == [expected, expected]
        kept_min = scores.abs().masked_fill(mask == 0, float("inf")).min(dim=1).values
        dropped_max = scores.abs().masked_fill(mask == 1, -1.0).max(dim=1).values
        assert (kept_min >= dropped_max).all()


def test_rrm_counts_the_patches_of_the_actual_input_size():
    model = tiny_model(rrm_keep_ratio=0.25)
    with torch.no_grad():
        output = model(random_pixels(size=96), output_region_scores=True, interpolate_pos_encoding=True)
    assert output.region_masks[-1].shape == (2, 144)
    assert output.region_masks[-1].sum(dim=1).tolist() == [36, 36]


def test_cgp_scores_carry_no_gradient_and_match_the_formula():
    model = tiny_model()
    output = model(random_pixels(), output_region_scores=True, output_hidden_states=True)
    scores = output.region_scores[-1]
    assert not scores.requires_grad
    tokens = model.backbone.post_layernorm(output.hidden_states[model.config.hri_layers[-1]])
    patches = tokens[:, 1:]
    weight = model.classifier.weight
    direction = torch.nn.functional.normalize(weight[1] - weight[0], dim=0)
    expected = (patches - patches.mean(dim=1, keepdim=True)) @ direction
    torch.testing.assert_close(scores, expected.detach(), atol=1e-5, rtol=1e-5)


def test_layer_features_are_what_hri_averages():
    model = tiny_model()
    with torch.no_grad():
        output = model(random_pixels(), output_region_scores=True)
        assert len(output.layer_features) == len(model.config.hri_layers)
        pooled = torch.stack(output.layer_features).mean(dim=0)
        torch.testing.assert_close(model.classifier(pooled), output.logits)
        assert model(random_pixels()).layer_features is None


def cls_features(model, pixels) -> list[torch.Tensor]:
    hidden_states = model.backbone(pixels, output_hidden_states=True).hidden_states
    return [model.backbone.post_layernorm(hidden_states[layer])[:, 0] for layer in model.config.hri_layers]


def test_rsi_strength_zero_removes_the_injection():
    model = tiny_model(rsi_strength=0.0)
    pixels = random_pixels()
    with torch.no_grad():
        pooled = torch.stack(cls_features(model, pixels)).mean(dim=0)
        torch.testing.assert_close(model(pixels).logits, model.classifier(pooled))
        injected = tiny_model(rsi_strength=1.0)(pixels).logits
    assert not torch.allclose(injected, model(pixels).logits)


def test_single_layer_with_everything_off_is_the_linear_probe_baseline():
    model = tiny_model(hri_layers=[-1], use_cgp_mask=False, rsi_strength=0.0)
    pixels = random_pixels()
    with torch.no_grad():
        expected = model.classifier(model.backbone(pixels).pooler_output)
        torch.testing.assert_close(model(pixels).logits, expected)


def test_rsi_sends_gradient_to_every_hri_layer_kept_patches():
    model = tiny_model()
    output = model(random_pixels(), output_region_scores=True, output_hidden_states=True)
    states = [output.hidden_states[layer] for layer in model.config.hri_layers]
    grads = torch.autograd.grad(output.logits[:, 1].sum(), states)
    for grad in grads:
        assert grad[:, 1:].abs().sum() > 0
    # The last block's patch tokens reach the logits only through RSI, so only the RRM-kept ones get gradient.
    last_patch_grad = grads[-1][:, 1:].abs().sum(dim=-1)
    assert torch.equal(last_patch_grad > 0, output.region_masks[-1].bool())

    baseline = tiny_model(rsi_strength=0.0)
    output = baseline(random_pixels(), output_hidden_states=True)
    (grad,) = torch.autograd.grad(output.logits[:, 1].sum(), [output.hidden_states[-1]])
    assert grad[:, 1:].abs().sum() == 0


def test_several_fake_classes_use_the_most_likely_fake_direction():
    labels = {0: "real", 1: "gan", 2: "diffusion"}
    model = tiny_model(id2label=labels, label2id={v: k for k, v in labels.items()})
    with torch.no_grad():
        output = model(random_pixels(4), labels=torch.tensor([0, 1, 2, 0]), output_region_scores=True)
    assert output.logits.shape == (4, 3)
    assert torch.isfinite(output.loss)


def test_lora_trains_only_adapters_and_classifier_and_reloads(tmp_path):
    from peft import PeftModel

    model = apply_finetuning(tiny_model(), "lora")
    before = {name: value.clone() for name, value in model.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(3):
        model(pixel_values=random_pixels(4), labels=torch.tensor([0, 1, 0, 1])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed and all("lora_" in name or "classifier.modules_to_save" in name for name in changed)
    assert any("classifier" in name for name in changed)

    model.eval().save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(tiny_model(), tmp_path / "adapter").eval()
    pixels = random_pixels()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixels).logits, model(pixels).logits)


def test_layernorm_mode_trains_only_layernorms_and_classifier():
    model = apply_finetuning(tiny_model(), "layernorm")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any(name.startswith("classifier") for name in trainable)
    assert all(name.startswith("classifier") or "norm" in name for name in trainable)
    with pytest.raises(ValueError, match="finetuning mode"):
        apply_finetuning(tiny_model(), "adapters")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rrm_keep_ratio": 0.0}, "rrm_keep_ratio"),
        ({"rrm_keep_ratio": 1.5}, "rrm_keep_ratio"),
        ({"hri_layers": [5]}, "hri_layers"),
        ({"hri_layers": [-6]}, "hri_layers"),
        ({"hri_layers": []}, "hri_layers"),
        ({"real_label_id": 2}, "real_label_id"),
        ({"vision_config": {"hidden_size": 66, "num_attention_heads": 4}}, "num_attention_heads"),
        ({"rsi_strength": -1.0}, "rsi_strength"),
        ({"rrm_keep_ration": 0.3}, "rrm_keep_ratio"),
    ],
)
def test_invalid_config_raises_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CoritConfig.from_preset("tiny", **kwargs)


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="tiny"):
        CoritConfig.from_preset("vit-huge")


SAVED_BEFORE_LAYOUT = Path(__file__).parent / "fixtures" / "corit-0.1.0-flat-layout"
"""A tiny detector saved by corit_hf 0.1.0 before its modules moved into subpackages (weights, config with its
auto_map, preprocessor; the remote-code files left out), with the logits it gave."""
LOGITS_BEFORE_LAYOUT = [[-0.005072684958577156, -0.09052479267120361], [-0.12575705349445343, -0.048108723014593124]]


def test_a_folder_saved_before_the_package_layout_loads_with_the_same_logits():
    model = AutoModelForImageClassification.from_pretrained(SAVED_BEFORE_LAYOUT)
    pixels = torch.linspace(-1, 1, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32)
    with torch.no_grad():
        logits = model.eval()(pixel_values=pixels).logits
    torch.testing.assert_close(logits, torch.tensor(LOGITS_BEFORE_LAYOUT))
    assert pipeline("image-classification", model=model, image_processor=str(SAVED_BEFORE_LAYOUT))(
        Image.new("RGB", (40, 30), "gray")
    )[0]["label"] in {"real", "fake"}
