"""The `optimization_collapse` evaluate metric, loaded offline from its folder."""

from pathlib import Path

import evaluate
import jinja2
import numpy as np
import pytest

from corit_hf.evaluation.collapse import SCORE_NAMES, detection_scores
from corit_hf.metrics import OPTIMIZATION_COLLAPSE


REPO = Path(__file__).resolve().parents[1]
LABELS = [0, 0, 0, 0, 1, 1, 1, 1]
PERFECT = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(OPTIMIZATION_COLLAPSE)


def test_perfect_predictions(metric):
    result = metric.compute(predictions=PERFECT, references=LABELS)
    assert result == {**{key: 1.0 for key in SCORE_NAMES}, "eer": 0.0, "collapsed": False, "n": 8}


def test_inverted_predictions(metric):
    result = metric.compute(predictions=[1 - p for p in PERFECT], references=LABELS)
    assert result["auc"] == 0.0
    assert result["accuracy"] == 0.0
    assert result["eer"] == 1.0
    assert result["collapsed"] is False


def test_constant_predictions(metric):
    result = metric.compute(predictions=[0.3] * 8, references=LABELS)
    assert result == {
        **dict(auc=0.5, ap=0.5, accuracy=0.5, real_accuracy=1.0, fake_accuracy=0.0, best_accuracy=0.5, eer=0.5),
        **dict(tpr_at_fpr_1=0.0, tpr_at_fpr_5=0.0, collapsed=True, n=8),
    }


def test_field_scores_are_the_shared_definitions(metric):
    predictions, references = [0.2, 0.7, 0.4, 0.9, 0.6, 0.1], [0, 0, 1, 1, 1, 0]
    result = metric.compute(predictions=predictions, references=references)
    assert {key: result[key] for key in SCORE_NAMES} == detection_scores(predictions, references)


def test_random_predictions_are_near_chance_and_collapsed(metric):
    rng = np.random.default_rng(0)
    references = rng.integers(0, 2, size=4000)
    result = metric.compute(predictions=rng.random(4000), references=references)
    assert result["auc"] == pytest.approx(0.5, abs=0.03)
    assert result["eer"] == pytest.approx(0.5, abs=0.03)
    assert result["ap"] == pytest.approx(references.mean(), abs=0.03)
    assert result["collapsed"] is True


def test_threshold_and_margin_are_arguments(metric):
    scores = [0.55, 0.6, 0.62, 0.64, 0.7, 0.8, 0.85, 0.9]
    assert metric.compute(predictions=scores, references=LABELS)["accuracy"] == 0.5
    assert metric.compute(predictions=scores, references=LABELS, threshold=0.65)["accuracy"] == 1.0
    ranked = [0.1, 0.7, 0.3, 0.4, 0.6, 0.2, 0.8, 0.9]  # AUC 12/16 = 0.75
    assert metric.compute(predictions=ranked, references=LABELS)["collapsed"] is False
    assert metric.compute(predictions=ranked, references=LABELS, margin=0.3)["collapsed"] is True


def test_cor_on_a_hand_made_sweep(metric):
    # rho=0 keeps 0.9 - 0.5 = 0.4 above chance; half is 0.2, so the level is 0.7. 0.75 at rho 1 keeps
    # (+0.05), 0.55 at rho 1.5 does not (-0.15): COR = 1 + 0.5 * 0.05 / 0.2 = 1.125.
    sweep = {"rhos": [0, 0.5, 1, 1.5, 3], "aucs": [0.9, 0.85, 0.75, 0.55, 0.5]}
    assert metric.compute(predictions=[], references=[], **sweep) == {"cor": pytest.approx(1.125)}
    with_scores = metric.compute(predictions=PERFECT, references=LABELS, **sweep)
    assert with_scores["cor"] == pytest.approx(1.125)
    assert with_scores["auc"] == 1.0


def test_incremental_batches(metric):
    metric.add_batch(predictions=PERFECT[:4], references=LABELS[:4])
    metric.add_batch(predictions=PERFECT[4:], references=LABELS[4:])
    assert metric.compute()["auc"] == 1.0


def test_bad_inputs_are_explained(metric):
    with pytest.raises(ValueError, match="single class"):
        metric.compute(predictions=[0.2, 0.9], references=[1, 1])
    with pytest.raises(ValueError, match="both"):
        metric.compute(predictions=PERFECT, references=LABELS, rhos=[0, 1])


def test_folder_has_the_evaluate_layout():
    folder = Path(OPTIMIZATION_COLLAPSE)
    assert {"optimization_collapse.py", "README.md", "app.py", "requirements.txt"} <= {
        p.name for p in folder.iterdir()
    }
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "app_file: app.py" in card


def test_card_is_the_rendered_hub_template():
    template = jinja2.Template((REPO / "hub_cards" / "metric_card.md").read_text(), keep_trailing_newline=True)
    shipped = (Path(OPTIMIZATION_COLLAPSE) / "README.md").read_text()
    assert shipped == template.render(load_path="corit_hf/metrics/optimization_collapse")
