"""Methods (`corit train --method`): what each one trains, bitwise, on two families (CLIP and DINOv2, tiny random
configs, 2 SAM steps); gend's unit features; the extra losses against a hand computation; SAM with every method;
saved method models loading without peft; and the registry."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from transformers import AutoModelForImageClassification, pipeline

from corit_hf import CoritForImageClassification
from corit_hf.cli import main
from corit_hf.models.finetuning import apply_finetuning
from corit_hf.models.modeling_corit import attention_projection_names, attention_projections, norm_modules
from corit_hf.training.methods import METHODS, get_method, register_method
from corit_hf.training.run import build_detector


FAMILIES = {"clip": "tiny", "dinov2": "dinov2-tiny"}
METHODS_UNDER_TEST = ("univfd", "effort", "gend", "lora", "corit")
RANKS = {"clip": 1, "dinov2": 3}
"""Effort's residual rank per family: its default (1), and one set with --osf-rank."""
RHO = "0.5"


@pytest.fixture(scope="module")
def forensic_folder(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("forensic")
    for label, colour in (("real", (200, 190, 180)), ("fake", (40, 60, 80))):
        (data / label).mkdir()
        for index in range(6):
            pixels = torch.randint(0, 60, (32, 32, 3), generator=torch.Generator().manual_seed(index))
            Image.fromarray((pixels + torch.tensor(colour) // 2).byte().numpy()).save(data / label / f"{index}.png")
    return data


@pytest.fixture(scope="module")
def train_method(forensic_folder, tmp_path_factory):
    """`corit train --method M --preset P` (2 steps, batch 4, --rho given), run once per argument set: the output
    folder."""
    runs: dict[tuple, Path] = {}

    def run(method: str, family: str, rho: str = RHO) -> Path:
        key = (method, family, rho)
        if key not in runs:
            output = tmp_path_factory.mktemp(f"{method}-{family}-rho{rho}")
            args = ["train", "--data", str(forensic_folder), "--method", method, "--preset", FAMILIES[family]]
            args += ["--max-steps", "2", "--batch-size", "4", "--rho", rho, "--output-dir", str(output)]
            assert main([*args, "--osf-rank", str(RANKS[family])]) == 0
            runs[key] = output
        return runs[key]

    return run


def initial_weights(method: str, family: str) -> dict[str, torch.Tensor]:
    """The weights `corit train` starts from (build_detector is seeded: --seed 0)."""
    return build_detector(FAMILIES[family], method=method, seed=0).state_dict()


def trained_weights(output: Path) -> dict[str, torch.Tensor]:
    return AutoModelForImageClassification.from_pretrained(output).state_dict()


def changed_tensors(method: str, family: str, output: Path) -> tuple[set[str], dict, dict]:
    before, after = initial_weights(method, family), trained_weights(output)
    assert before.keys() == after.keys()  # a plain CoRIT folder: adapters merged, nothing of peft left
    return {name for name in before if not torch.equal(before[name], after[name])}, before, after


def parameter_names(model: nn.Module, modules: list[nn.Module]) -> set[str]:
    """The names of the parameters of `modules` inside `model`."""
    wanted = {id(module) for module in modules}
    return {
        f"{name}.{param_name}"
        for name, module in model.named_modules()
        if id(module) in wanted
        for param_name, _ in module.named_parameters(recurse=False)
    }


def projection_weights(model: nn.Module, suffixes: tuple[str, ...] | None = None) -> set[str]:
    names = attention_projection_names(model)
    return {f"{name}.weight" for name in names if suffixes is None or name.rsplit(".", 1)[-1] in suffixes}


def head_inputs(model: nn.Module) -> list[torch.Tensor]:
    """Collects what the classifier receives on each forward."""
    seen = []
    model.classifier.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    return seen


def rank(matrix: torch.Tensor) -> int:
    """Numerical rank: singular values above 1e-6 (float32 weights carry ~1e-8; two steps move a trained direction
    by 1e-4 or more)."""
    return int(torch.linalg.matrix_rank(matrix.double(), atol=1e-6, rtol=0))


HEAD = {"classifier.weight", "classifier.bias"}


@pytest.mark.parametrize("family", FAMILIES)
def test_univfd_trains_the_head_alone(train_method, family):
    changed, _, _ = changed_tensors("univfd", family, train_method("univfd", family))
    assert changed == HEAD


@pytest.mark.parametrize("family", FAMILIES)
def test_gend_trains_every_norm_and_the_head(train_method, family):
    model = build_detector(FAMILIES[family], method="gend")
    norms = parameter_names(model, norm_modules(model))
    final = {"clip": "backbone.post_layernorm.weight", "dinov2": "backbone.layernorm.weight"}[family]
    assert final in norms and len(norms) == 2 * (2 * 4 + 1 + (family == "clip"))  # weight + bias of each norm
    changed, _, _ = changed_tensors("gend", family, train_method("gend", family))
    assert changed == norms | HEAD


@pytest.mark.parametrize("family", FAMILIES)
def test_effort_changes_each_attention_projection_by_its_residual_rank_and_the_head(train_method, family):
    model = build_detector(FAMILIES[family], method="effort")
    projections = projection_weights(model)
    assert len(projections) == 4 * 4  # query, key, value and output projections of 4 blocks
    changed, before, after = changed_tensors("effort", family, train_method("effort", family))
    assert changed == projections | HEAD
    residual = RANKS[family]
    for name in projections:
        # W = top (min(dim) - r) SVD part, frozen, + the trained rank-r residual, so W_after - top part has rank r;
        # the change is the trained residual minus the initial one: rank <= 2r.
        u, s, vh = torch.linalg.svd(before[name].double())
        kept = s.shape[0] - residual
        top = (u[:, :kept] * s[:kept]) @ vh[:kept]
        assert rank(after[name].double() - top) <= residual
        assert 1 <= rank(after[name] - before[name]) <= 2 * residual


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_changes_the_query_and_value_projections_by_its_rank_and_the_head(train_method, family):
    model = build_detector(FAMILIES[family], method="lora")
    adapted = projection_weights(model, tuple(attention_projections(model)))
    assert {name.rsplit(".", 2)[-2] for name in adapted} == {"q_proj", "v_proj"} and len(adapted) == 8
    changed, before, after = changed_tensors("lora", family, train_method("lora", family))
    assert changed == adapted | HEAD
    for name in adapted:
        assert 1 <= rank(after[name] - before[name]) <= 8  # --lora-rank's default
        assert rank(after[name] - before[name]) < min(before[name].shape)


@pytest.mark.parametrize("family", FAMILIES)
def test_corit_trains_every_weight(train_method, family):
    changed, before, _ = changed_tensors("corit", family, train_method("corit", family))
    model = build_detector(FAMILIES[family], method="corit")
    parameters = {name for name, _ in model.named_parameters()}
    # DINOv2's mask token only replaces masked patches, which CoRIT never asks for
    assert changed == parameters - {"backbone.embeddings.mask_token"}


@pytest.mark.parametrize("method", METHODS_UNDER_TEST)
def test_sam_trains_every_method(train_method, method):
    sam = train_method(method, "clip")
    metrics = json.loads((sam / "metrics.json").read_text())
    assert metrics["skipped_ascents"] == 0 and metrics["method"] == method
    assert metrics["finetuning"] == get_method(method).finetuning
    plain = trained_weights(train_method(method, "clip", rho="0"))
    ascended = trained_weights(sam)
    assert any(not torch.equal(plain[name], ascended[name]) for name in HEAD)  # the ascent changed the step


def test_gend_feeds_the_head_unit_length_features_and_the_others_do_not(train_method):
    pixels = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for method, unit in (("gend", True), ("univfd", False)):
        model = AutoModelForImageClassification.from_pretrained(train_method(method, "clip")).eval()
        seen = head_inputs(model)
        with torch.no_grad():
            model(pixels)
        norms = seen[0].norm(dim=-1)
        assert torch.allclose(norms, torch.ones(3), atol=1e-6) == unit


def test_gend_loss_is_cross_entropy_plus_its_weighted_alignment_and_uniformity():
    model = build_detector("tiny", method="gend").train()
    pixels = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 0, 1, 1, 1, 0])
    seen = head_inputs(model)
    output = model(pixels, labels=labels)
    unit = seen[0].detach().double()
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    same = [(i, j) for i, j in pairs if labels[i] == labels[j]]
    alignment = sum(float((unit[i] - unit[j]).pow(2).sum()) for i, j in same) / len(same)
    kernel = [float(torch.exp(-2 * (unit[i] - unit[j]).pow(2).sum())) for i, j in pairs]
    uniformity = float(torch.log(torch.tensor(sum(kernel) / len(kernel))))
    cross_entropy = float(nn.functional.cross_entropy(output.logits.detach(), labels))
    assert len(same) == 6 and model.config.alignment_weight == 0.1 and model.config.uniformity_weight == 0.5
    assert output.loss.item() == pytest.approx(cross_entropy + 0.1 * alignment + 0.5 * uniformity, abs=1e-5)


def test_effort_losses_are_off_and_match_effort_s_own_formulas_when_on():
    model = build_detector("tiny", method="effort", orthogonality_weight=1.0, singular_value_weight=1.0)
    before = {name: model.get_submodule(name).weight.detach().double() for name in attention_projection_names(model)}
    peft_model = apply_finetuning(model, "osf", osf_rank=2)
    with torch.no_grad():  # move every residual off its initial value
        for name, param in peft_model.named_parameters():
            if "osf_svd_params" in name:
                param.add_(0.05 * torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))))
    pixels = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 0, 1])
    output = peft_model(pixel_values=pixels, labels=labels)
    orthogonality, singular_values = [], []
    for name, weight in before.items():
        # Effort's SVDResidualLinear: W = U_r S_r V_r (frozen) + U_res S_res V_res, its losses written as it does
        svd = peft_model.base_model.model.get_submodule(name).osf_svd_params["default"]
        u_res, s_res, v_res = (svd[key].detach().double() for key in ("U_low", "S_low", "V_low"))
        u, s, vh = torch.linalg.svd(weight)
        u_r, s_r, v_r = u[:, :-2], s[:-2], vh[:-2]
        u_all, v_all = torch.cat([u_r, u_res], dim=1), torch.cat([v_r, v_res], dim=0)
        eye = torch.eye(weight.shape[0], dtype=torch.float64)
        orthogonality.append(0.5 * torch.norm(u_all @ u_all.T - eye) + 0.5 * torch.norm(v_all @ v_all.T - eye))
        current = (u_r * s_r) @ v_r + (u_res * s_res) @ v_res
        singular_values.append(abs(torch.norm(current) ** 2 - torch.norm(weight) ** 2))
    cross_entropy = nn.functional.cross_entropy(output.logits.detach(), labels)
    expected = cross_entropy + sum(orthogonality) / 16 + sum(singular_values) / 16
    assert float(output.loss) == pytest.approx(float(expected), rel=1e-4)
    peft_model.base_model.model.config.orthogonality_weight = 0.0
    peft_model.base_model.model.config.singular_value_weight = 0.0  # get_method("effort")'s: off, as released
    assert get_method("effort").config_overrides()["orthogonality_weight"] == 0.0
    output = peft_model(pixel_values=pixels, labels=labels)
    assert float(output.loss) == pytest.approx(float(nn.functional.cross_entropy(output.logits, labels)), abs=1e-6)


def test_saved_method_models_load_in_the_pipeline_without_peft(train_method, tmp_path):
    image = tmp_path / "image.png"
    Image.new("RGB", (40, 40), (90, 120, 30)).save(image)
    folders = {method: str(train_method(method, "clip")) for method in ("effort", "lora", "gend")}
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["peft"] = None  # any import of peft now fails
        import corit_hf
        from transformers import pipeline
        try:
            import peft
        except ImportError:
            blocked = True
        out = {{"blocked": blocked}}
        for method, folder in {folders!r}.items():
            scores = pipeline("image-classification", model=folder)({str(image)!r})
            out[method] = {{row["label"]: row["score"] for row in scores}}
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300, check=True
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out.pop("blocked")
    for method, scores in out.items():
        assert CoritForImageClassification.from_pretrained(folders[method]).config.method == method
        rows = pipeline("image-classification", model=folders[method])(str(image))
        assert scores == pytest.approx({row["label"]: row["score"] for row in rows}, abs=1e-6)


def test_a_registered_method_builds_what_it_says():
    @register_method("test-corit-ln", finetuning="layernorm")
    def corit_layernorm() -> dict:
        """CoRIT, with LayerNorm tuning only."""
        return {"rsi_strength": 0.5}

    try:
        method = get_method("test-corit-ln")
        assert method.description == "CoRIT, with LayerNorm tuning only."
        model = build_detector("tiny", method="test-corit-ln", rrm_keep_ratio=0.5)
        assert (model.config.method, model.config.rsi_strength, model.config.rrm_keep_ratio) == (
            "test-corit-ln",
            0.5,
            0.5,
        )
        with pytest.raises(ValueError, match="already registered"):
            register_method("test-corit-ln")(corit_layernorm)
    finally:
        METHODS.pop("test-corit-ln")
    with pytest.raises(ValueError, match="registered methods: baseline, corit, corit-no-hri"):
        build_detector("tiny", method="test-corit-ln")


def test_finetune_overrides_the_method_s_tuning(forensic_folder, tmp_path):
    args = ["train", "--data", str(forensic_folder), "--method", "univfd", "--finetune", "full", "--rho", "0"]
    assert main([*args, "--max-steps", "1", "--batch-size", "4", "--output-dir", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["method"], metrics["finetuning"]) == ("univfd", "full")
    changed, _, _ = changed_tensors("univfd", "clip", tmp_path)
    assert "backbone.encoder.layers.0.mlp.fc1.weight" in changed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--method", "bogus"],
            "corit train: error: --method must be one of baseline, corit, corit-no-hri, corit-no-rrm, corit-no-rsi, "
            "effort, gend, lora, univfd, got bogus.",
        ),
        (["--osf-rank", "0"], "corit train: error: --osf-rank must be an integer >= 1, got 0."),
    ],
)
def test_a_bad_method_flag_is_one_line(argv, message, capsys):
    assert main(["train", *argv]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_an_osf_rank_as_wide_as_the_projections_is_one_line(forensic_folder, tmp_path, capsys):
    args = ["train", "--data", str(forensic_folder), "--method", "effort", "--osf-rank", "64"]
    assert main([*args, "--max-steps", "1", "--output-dir", str(tmp_path)]) == 2
    message = "corit train: error: --osf-rank must be below the attention projections' smaller side (64), got 64."
    assert capsys.readouterr().err.splitlines()[-1] == message


ALL_FAMILIES = ("tiny", "siglip-tiny", "dinov2-tiny", "dinov2-reg-tiny", "dinov3-tiny", "vit-tiny")


@pytest.mark.parametrize("preset", ALL_FAMILIES)
@pytest.mark.parametrize("method", METHODS_UNDER_TEST)
def test_every_method_finds_its_weights_and_trains_on_every_family(method, preset):
    model = build_detector(preset, method=method)
    tuned = apply_finetuning(model, get_method(method).finetuning)
    trainable = {name for name, param in tuned.named_parameters() if param.requires_grad}
    if method == "effort":  # U, S and V of every attention projection of the 4 blocks
        assert sum("osf_svd_params" in name for name in trainable) == 3 * 4 * 4
    pixels = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    tuned(pixel_values=pixels, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    unused = {name for name, param in tuned.named_parameters() if param.requires_grad and param.grad is None}
    assert {name.rsplit(".", 1)[-1] for name in unused} <= {"mask_token"}  # DINOv2's: only for masked patches


def test_a_folder_saved_before_methods_loads_with_no_extra_loss_and_no_method():
    model = AutoModelForImageClassification.from_pretrained(
        Path(__file__).parent / "fixtures" / "corit-0.1.0-flat-layout"
    )
    config = model.config
    assert (config.method, config.feature_normalization) == (None, "none")
    assert config.alignment_weight == config.uniformity_weight == config.orthogonality_weight == 0
    pixels = torch.linspace(-1, 1, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32)
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        output = model.eval()(pixel_values=pixels, labels=labels)
    assert torch.equal(output.loss, nn.functional.cross_entropy(output.logits, labels))
