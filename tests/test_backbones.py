"""CoRIT on every supported backbone family (tiny random configs): the token rule, saving and loading, the pipeline,
`from_backbone`, the fine-tuning modes, GSNR, `corit train --backbone`, and the refusal of backbones without a grid."""

import json
import math
import shutil
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
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    BitImageProcessorPil,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    SiglipConfig,
    SiglipImageProcessorPil,
    SiglipModel,
    ViTImageProcessorPil,
    pipeline,
)

from corit_hf import CoritConfig, CoritForImageClassification
from corit_hf.cli import main
from corit_hf.models.configuration_corit import PRESETS
from corit_hf.models.finetuning import apply_finetuning
from corit_hf.training.gsnr import layer_gsnr


SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "image_size": 32}
"""Each family's tiny preset, smaller still: 2 blocks, 32 px, a 4 x 4 patch grid."""
TOWER = {**SMALL, "intermediate_size": 64, "num_attention_heads": 4, "patch_size": 8}
SQUARE = {"height": 32, "width": 32}
NAFLEX = {key: value for key, value in TOWER.items() if key != "image_size"} | {"num_patches": 16}
# family -> (preset, final norm, tokens before the patches)
FAMILIES = {
    "clip": ("tiny", "post_layernorm", 1),
    "siglip": ("siglip-tiny", "post_layernorm", 0),
    "dinov2": ("dinov2-tiny", "layernorm", 1),
    "dinov2-reg": ("dinov2-reg-tiny", "layernorm", 5),
    "dinov3": ("dinov3-tiny", "norm", 5),
    "vit": ("vit-tiny", "layernorm", 1),
}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
FAMILY_MEANS = {
    "clip": [0.48145466, 0.4578275, 0.40821073],
    "siglip": [0.5, 0.5, 0.5],
    "dinov2": IMAGENET_MEAN,
    "dinov2-reg": IMAGENET_MEAN,
    "dinov3": IMAGENET_MEAN,
    "vit": [0.5, 0.5, 0.5],
}
"""The mean of each family's processor, which a random-init preset uses."""
BASELINE = {"hri_layers": [-1], "use_cgp_mask": False, "rsi_strength": 0.0}


def family_model(family: str, **config_kwargs) -> CoritForImageClassification:
    torch.manual_seed(0)
    config = CoritConfig.from_preset(FAMILIES[family][0], vision_config=SMALL, **config_kwargs)
    return CoritForImageClassification(config).eval()


def random_pixels(size: int = 32, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def normalised_tokens(model: CoritForImageClassification, hidden_state: torch.Tensor, family: str) -> torch.Tensor:
    return model.backbone.get_submodule(FAMILIES[family][1])(hidden_state)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [32, 48])
def test_region_scores_cover_the_patches_only(family, size):
    model = family_model(family)
    pixels = random_pixels(size)
    with torch.no_grad():
        output = model(pixels, output_region_scores=True, output_hidden_states=True, interpolate_pos_encoding=True)
    num_patches = (size // 8) ** 2
    prefix = FAMILIES[family][2]
    weight = model.classifier.weight
    direction = torch.nn.functional.normalize(weight[1] - weight[0], dim=0)
    for layer, scores, mask in zip(model.config.hri_layers, output.region_scores, output.region_masks):
        assert scores.shape == mask.shape == (2, num_patches)
        assert mask.sum(dim=1).tolist() == [math.ceil(0.25 * num_patches)] * 2
        tokens = normalised_tokens(model, output.hidden_states[layer], family)
        assert tokens.shape[1] == prefix + num_patches
        patches = tokens[:, prefix:]
        expected = (patches - patches.mean(dim=1, keepdim=True)) @ direction
        torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    assert all(feature.shape == (2, 32) for feature in output.layer_features)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_baseline_reads_the_class_token_or_the_mean_patch_token(family):
    model = family_model(family, **BASELINE)
    with torch.no_grad():
        output = model(random_pixels(), output_hidden_states=True)
        tokens = normalised_tokens(model, output.hidden_states[-1], family)
        prefix = FAMILIES[family][2]
        global_token = tokens[:, 0] if prefix else tokens.mean(dim=1)
        torch.testing.assert_close(output.logits, model.classifier(global_token))


@pytest.mark.parametrize("vision", [{"model_type": "deit"}, {"model_type": "ijepa"}])
def test_an_unlisted_vit_style_family_works_unchanged(vision):
    # DeiT: a class and a distillation token before the patches; I-JEPA: patches only.
    model = CoritForImageClassification(CoritConfig(vision_config={**vision, **TOWER})).eval()
    with torch.no_grad():
        output = model(random_pixels(), output_region_scores=True)
    assert output.region_scores[-1].shape == (2, 16)
    assert model.final_norm_name == "layernorm"


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, tuple[CoritForImageClassification, Path]]:
    folder = tmp_path_factory.mktemp("families")
    saved = {}
    for family in FAMILIES:
        model = family_model(family)
        model.save_pretrained(folder / family)
        saved[family] = model, folder / family
    return saved


@pytest.mark.parametrize("family", FAMILIES)
def test_save_then_load_without_remote_code_and_through_the_pipeline(saved_models, family):
    model, path = saved_models[family]
    pixels = random_pixels()
    reloaded = AutoModelForImageClassification.from_pretrained(path, trust_remote_code=False).eval()
    assert type(reloaded) is CoritForImageClassification
    with torch.no_grad():
        assert torch.equal(model(pixels).logits, reloaded(pixels).logits)

    assert json.loads((path / "preprocessor_config.json").read_text())["image_mean"] == FAMILY_MEANS[family]
    classifier = pipeline("image-classification", model=str(path))
    image = Image.fromarray(np.arange(40 * 56 * 3, dtype=np.uint8).reshape(40, 56, 3))
    inputs = classifier.image_processor(image, return_tensors="pt")["pixel_values"]
    assert inputs.shape == (1, 3, 32, 32)
    with torch.no_grad():
        fake = model(inputs).logits.softmax(-1)[0, 1].item()
    scores = {row["label"]: row["score"] for row in classifier(image)}
    assert scores["fake"] == pytest.approx(fake, abs=1e-5)


def test_remote_code_loads_every_family_where_corit_hf_cannot_be_imported(saved_models, tmp_path):
    pixels = random_pixels()
    torch.save(pixels, tmp_path / "pixels.pt")
    paths = {family: str(path) for family, (_, path) in saved_models.items()}
    script = textwrap.dedent(
        f"""
        import json, sys, torch
        sys.modules["corit_hf"] = None  # any import of corit_hf now fails
        from transformers import AutoModelForImageClassification
        pixels = torch.load({str(tmp_path / "pixels.pt")!r})
        out = {{}}
        for family, path in {paths!r}.items():
            model = AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True).eval()
            with torch.no_grad():
                out[family] = [type(model).__module__, model(pixels).logits.tolist()]
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300, check=True
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for family, (model, _) in saved_models.items():
        module, logits = out[family]
        assert module.startswith("transformers_modules")
        with torch.no_grad():
            torch.testing.assert_close(torch.tensor(logits), model(pixels).logits, rtol=0, atol=1e-6)


def save_checkpoint(family: str, folder: Path) -> tuple[dict, Path]:
    """A tiny random checkpoint of `family` as its Hub repos hold it (a CLIP/SigLIP checkpoint is the full
    image-text model) with its image processor; returns the vision tower's weights and the folder."""
    torch.manual_seed(1)
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4}
    text |= {"vocab_size": 64, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    if family == "clip":
        model = CLIPModel(CLIPConfig(vision_config=TOWER, text_config=text, projection_dim=16))
        tower, processor = model.vision_model, CLIPImageProcessorPil(size={"shortest_edge": 36}, crop_size=SQUARE)
    elif family in ("siglip", "siglip2-fixres"):  # SigLIP2 at a fixed resolution is a SiglipModel on the Hub
        model = SiglipModel(SiglipConfig(vision_config=TOWER, text_config=text))
        resample = 2 if family == "siglip2-fixres" else 3
        tower, processor = model.vision_model, SiglipImageProcessorPil(size=SQUARE, resample=resample)
    else:
        model_type = {"dinov2": "dinov2", "dinov2-reg": "dinov2_with_registers", "dinov3": "dinov3_vit"}
        # Hub DINOv2 configs say 518 px while their processor crops 224 (DINOv2 always interpolates)
        shape = {**TOWER, "image_size": 64} if family.startswith("dinov2") else TOWER
        model = tower = AutoModel.from_config(AutoConfig.for_model(model_type.get(family, family), **shape))
        mean, std = IMAGENET_MEAN, [0.229, 0.224, 0.225]
        if family == "vit":
            processor = ViTImageProcessorPil(size=SQUARE)
        elif family == "dinov3":  # written as the Hub has it: a torchvision-only processor class
            processor = {"image_processor_type": "DINOv3ViTImageProcessorFast", "image_mean": mean, "image_std": std}
            processor |= {"resample": 2, "size": SQUARE, "do_resize": True, "do_normalize": True}
        else:
            processor = BitImageProcessorPil(
                size={"shortest_edge": 36}, crop_size=SQUARE, image_mean=mean, image_std=std
            )
    model.save_pretrained(folder)
    if isinstance(processor, dict):
        (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    else:
        processor.save_pretrained(folder)
    return tower.state_dict(), folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, tuple[dict, Path]]:
    folder = tmp_path_factory.mktemp("checkpoints")
    return {family: save_checkpoint(family, folder / family) for family in [*FAMILIES, "siglip2-fixres"]}


@pytest.mark.parametrize("family", [*FAMILIES, "siglip2-fixres"])
def test_from_backbone_keeps_the_tower_weights_and_the_image_processor(checkpoints, family, tmp_path):
    weights, folder = checkpoints[family]
    model = CoritForImageClassification.from_backbone(folder, rrm_keep_ratio=0.5)
    copied = model.backbone.state_dict()
    # Only the pooling heads CoRIT never uses (SigLIP's attention pooling, ViT's pooler) are left behind.
    assert {key.split(".")[0] for key in weights.keys() - copied.keys()} <= {"head", "pooler"}
    for key, tensor in copied.items():
        assert torch.equal(tensor, weights[key]), key
    assert model.config.rrm_keep_ratio == 0.5 and model.config.base_model_name_or_path == str(folder)

    source = json.loads((folder / "preprocessor_config.json").read_text())
    model.save_pretrained(tmp_path / "detector")
    settings = json.loads((tmp_path / "detector" / "preprocessor_config.json").read_text())
    for key in ("image_mean", "image_std", "resample", "size", "crop_size"):
        assert settings.get(key) == source.get(key), key
    saved = AutoImageProcessor.from_pretrained(tmp_path / "detector")
    with torch.no_grad():
        assert model(saved(Image.new("RGB", (50, 40)), return_tensors="pt")["pixel_values"]).logits.shape == (1, 2)
    assert CoritForImageClassification.from_clip == CoritForImageClassification.from_backbone


def test_from_backbone_refuses_a_checkpoint_without_the_tower_weights(tmp_path):
    CoritForImageClassification(CoritConfig.from_preset("dinov2-tiny")).save_pretrained(tmp_path / "corit")
    config = json.loads((tmp_path / "corit" / "config.json").read_text())
    (tmp_path / "corit" / "config.json").write_text(json.dumps(config["vision_config"]))  # a Dinov2Model config
    with pytest.raises(ValueError, match="lacks the weights of a Dinov2Model"):
        CoritForImageClassification.from_backbone(tmp_path / "corit")


@pytest.mark.parametrize("family", FAMILIES)
def test_layernorm_tuning_trains_every_norm_of_the_family(family):
    model = apply_finetuning(family_model(family), "layernorm")
    trainable = {name.rsplit(".", 1)[0] for name, param in model.named_parameters() if param.requires_grad}
    norms = trainable - {"classifier"}
    assert "classifier" in trainable and f"backbone.{FAMILIES[family][1]}" in norms
    extra = {"clip": 1}.get(family, 0)  # CLIP also normalises the embeddings (`pre_layrnorm`)
    assert len(norms) == 2 * model.config.vision_config.num_hidden_layers + 1 + extra
    assert all(isinstance(model.get_submodule(name), torch.nn.LayerNorm) for name in norms)


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_trains_the_query_and_value_projections(family):
    model = apply_finetuning(family_model(family), "lora")
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if ".lora_" in name}
    assert adapted == {"q_proj", "v_proj"}
    before = {name: value.clone() for name, value in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    model(pixel_values=random_pixels(batch=4), labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    optimizer.step()
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert any("lora_B" in name for name in changed) and any("classifier" in name for name in changed)
    assert all("lora_" in name or "classifier.modules_to_save" in name for name in changed)


@pytest.mark.parametrize("family", FAMILIES)
def test_gsnr_names_the_blocks_of_every_family(family):
    model = family_model(family)
    batch = {"pixel_values": random_pixels(batch=4), "labels": torch.tensor([0, 1, 0, 1])}
    gsnr = layer_gsnr(model.train(), None, batch, chunks=2)
    assert list(gsnr) == ["embeddings", "layer_00", "layer_01", "head"]
    assert all(math.isfinite(value) and value > 0 for value in gsnr.values())


@pytest.fixture(scope="module")
def forensic_folder(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("forensic")
    for split in ("train", "val"):
        for label, colour in (("real", "white"), ("fake", "black")):
            (data / split / label).mkdir(parents=True)
            for index in range(4):
                Image.new("RGB", (40, 40), colour).save(data / split / label / f"{index}.png")
    return data


@pytest.mark.parametrize("family", FAMILIES)
def test_corit_train_takes_a_checkpoint_of_every_family(checkpoints, forensic_folder, family, tmp_path):
    _, folder = checkpoints[family]
    output = tmp_path / "model"
    args = ["train", "--data", str(forensic_folder), "--backbone", str(folder), "--output-dir", str(output)]
    assert main([*args, "--max-steps", "2", "--batch-size", "4", "--gsnr-every", "1", "--finetune", "layernorm"]) == 0
    config = json.loads((output / "config.json").read_text())
    assert config["base_model_name_or_path"] == str(folder)
    checkpoint = AutoConfig.from_pretrained(folder)
    assert config["vision_config"]["model_type"] == getattr(checkpoint, "vision_config", checkpoint).model_type
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["learning_rate"] == 2e-5 and metrics["validation"]["n"] == 8
    records = [json.loads(line) for line in (output / "gsnr.jsonl").read_text().splitlines()]
    assert {"gsnr/layer_00", "gsnr/layer_01", "gsnr/head"} <= set(records[0])
    source = json.loads((folder / "preprocessor_config.json").read_text())
    assert json.loads((output / "preprocessor_config.json").read_text())["image_mean"] == source["image_mean"]


def test_a_clip_config_saved_without_model_type_loads_as_clip(tmp_path):
    fixture = Path(__file__).parent / "fixtures" / "corit-0.1.0-flat-layout"
    shutil.copytree(fixture, tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["vision_config"]["model_type"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    pixels = torch.linspace(-1, 1, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32)
    old = AutoModelForImageClassification.from_pretrained(tmp_path / "old").eval()
    as_saved = AutoModelForImageClassification.from_pretrained(fixture).eval()
    assert old.config.vision_config.model_type == "clip_vision_model"
    assert type(old.backbone).__name__ == "CLIPVisionModel"
    with torch.no_grad():
        assert torch.equal(old(pixel_values=pixels).logits, as_saved(pixel_values=pixels).logits)


NO_GRID = "CoRIT needs a ViT-style backbone \\(a fixed grid of patch tokens of one width\\); the"


@pytest.mark.parametrize(
    ("vision", "missing"),
    [
        (  # SigLIP2 NaFlex: patches of any count, no fixed grid
            {"model_type": "siglip2_vision_model", **NAFLEX},
            "'siglip2_vision_model' vision config has no image_size.",
        ),
        (
            {"model_type": "resnet", "embedding_size": 8, "hidden_sizes": [8, 8], "depths": [1, 1]},
            "'resnet' vision config has no hidden_size, num_hidden_layers, num_attention_heads, image_size, patch_",
        ),
    ],
)
def test_a_backbone_without_a_patch_grid_is_refused_naming_what_it_lacks(vision, missing, tmp_path):
    with pytest.raises(ValueError, match=f"{NO_GRID} {missing}"):
        CoritConfig(vision_config=vision)
    model_type = vision.pop("model_type")
    AutoModel.from_config(AutoConfig.for_model(model_type, **vision)).save_pretrained(tmp_path / model_type)
    with pytest.raises(ValueError, match=f"{NO_GRID} {missing}"):
        CoritForImageClassification.from_backbone(tmp_path / model_type)


def test_every_family_has_a_tiny_a_base_and_a_large_preset():
    widths = {}
    for name in PRESETS:
        vision = CoritConfig.from_preset(name).vision_config
        widths.setdefault(vision.model_type, set()).add(vision.hidden_size)
    assert widths == {model_type: {64, 768, 1024} for model_type in widths}
    assert set(widths) == {
        "clip_vision_model",
        "siglip_vision_model",
        "dinov2",
        "dinov2_with_registers",
        "dinov3_vit",
        "vit",
    }
