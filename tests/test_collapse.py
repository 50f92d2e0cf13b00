"""Collapse detection, COR and the detection scores on hand-made inputs."""

import pytest

from corit_hf.evaluation.collapse import (
    SCORE_NAMES,
    collapse_report,
    critical_radius,
    detection_scores,
    equal_error_rate,
    is_collapsed,
)


LABELS = [0, 0, 0, 0, 1, 1, 1, 1]
PERFECT = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]


def test_perfect_scores():
    scores = detection_scores(PERFECT, LABELS)
    assert list(scores) == list(SCORE_NAMES)
    assert all(value == 1.0 for key, value in scores.items() if key != "eer")
    assert scores["eer"] == 0.0


def test_field_scores_on_a_hand_computed_case():
    # 20 reals: 18 below 0.5, one at 0.55 and one at 0.95. 10 fakes: two below 0.5, eight above.
    reals = [i / 100 for i in range(1, 19)] + [0.55, 0.95]
    fakes = [0.4, 0.45, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.99]
    scores = detection_scores(reals + fakes, [0] * 20 + [1] * 10)
    assert scores["real_accuracy"] == pytest.approx(18 / 20)
    assert scores["fake_accuracy"] == pytest.approx(8 / 10)
    assert scores["accuracy"] == pytest.approx(26 / 30)
    # The best threshold lies between 0.18 and 0.4: 18 reals and all 10 fakes right.
    assert scores["best_accuracy"] == pytest.approx(28 / 30)
    # 0.55 outranks two fakes and 0.95 outranks nine of the 200 real-fake pairs.
    assert scores["auc"] == pytest.approx(189 / 200)
    # FPR <= 1% allows no false positive: only the fake at 0.99 is above 0.95. FPR <= 5% allows one (0.95):
    # the eight fakes above 0.55.
    assert scores["tpr_at_fpr_1"] == pytest.approx(0.1)
    assert scores["tpr_at_fpr_5"] == pytest.approx(0.8)


def test_tpr_at_low_fpr_counts_collinear_roc_points():
    # Two tied groups of one real and one fake (0.5, 0.6) between 98 clear reals and 98 clear fakes: the
    # threshold 0.6 reaches FPR 1% with TPR 99%, a point a plotted ROC curve drops as collinear.
    scores = [0.1] * 98 + [0.5, 0.5, 0.6, 0.6] + [0.95] * 98
    labels = [0] * 98 + [0, 1, 0, 1] + [1] * 98
    assert detection_scores(scores, labels)["tpr_at_fpr_1"] == pytest.approx(0.99)


def test_inverted_scores_are_informative_not_collapsed():
    report = collapse_report([1 - p for p in PERFECT], LABELS)
    assert report["auc"] == 0.0
    assert report["accuracy"] == 0.0
    assert report["eer"] == 1.0
    assert report["collapsed"] is False


def test_constant_scores_collapse():
    report = collapse_report([0.5] * 8, LABELS)
    assert (report["auc"], report["ap"], report["accuracy"], report["eer"]) == (0.5, 0.5, 0.5, 0.5)
    # exactly 0.5 is labelled real, as argmax over [real, fake] logits decides
    assert (report["real_accuracy"], report["fake_accuracy"], report["best_accuracy"]) == (1.0, 0.0, 0.5)
    assert (report["tpr_at_fpr_1"], report["collapsed"], report["n"]) == (0.0, True, 8)


def test_one_class_predictions_collapse_even_with_a_good_ranking():
    # Ranks perfectly (AUC 1) but every score is above 0.5: one label for all inputs.
    report = collapse_report([0.51, 0.52, 0.53, 0.54, 0.6, 0.7, 0.8, 0.9], LABELS)
    assert report["auc"] == 1.0
    assert report["accuracy"] == 0.5
    assert report["collapsed"] is True


def test_eer_is_where_false_positive_and_false_negative_rates_meet():
    # One of four reals scores above both fakes: at any threshold between 0.3 and 0.5, FPR = 1/4; FNR falls
    # from 1/2 to 0 along that ROC segment and meets FPR at 1/4.
    assert equal_error_rate([0.1, 0.2, 0.3, 0.9, 0.5, 0.6], [0, 0, 0, 0, 1, 1]) == pytest.approx(0.25)
    # Constant scores: the ROC is the diagonal, interpolated to FPR = FNR = 1/2.
    assert equal_error_rate([0.5] * 4, [0, 1, 0, 1]) == pytest.approx(0.5)


def test_collapse_margin():
    assert is_collapsed(0.54)
    assert is_collapsed(0.46)
    assert not is_collapsed(0.56)
    assert is_collapsed(0.58, margin=0.1)
    assert is_collapsed(0.9, majority=0.95)
    assert not is_collapsed(0.9, majority=0.94)


def test_cor_interpolates_between_grid_points():
    # rho=0 AUC 0.9 -> 0.4 above chance; keep half -> level 0.7. 0.8 at rho 1 keeps, 0.6 at rho 2 does not:
    # the AUC crosses 0.7 halfway, COR = 1.5.
    assert critical_radius([0, 0.5, 1, 2, 5], [0.9, 0.85, 0.8, 0.6, 0.5]) == pytest.approx(1.5)


def test_cor_by_hand_with_unequal_spacing_and_unsorted_input():
    # level = 0.5 + 0.5 * (0.7 - 0.5) = 0.6; 0.65 at rho 0.75 keeps (+0.05), 0.5 at rho 1 drops (-0.1):
    # COR = 0.75 + 0.25 * 0.05 / 0.15.
    expected = 0.75 + 0.25 * 0.05 / 0.15
    assert critical_radius([1.0, 0.0, 0.75, 0.5], [0.5, 0.7, 0.65, 0.66]) == pytest.approx(expected)


def test_cor_is_the_largest_kept_rho_when_runs_recover():
    assert critical_radius([0, 1, 2, 3], [0.9, 0.5, 0.9, 0.5]) == pytest.approx(2.5)


def test_cor_without_collapse_is_the_grid_maximum():
    assert critical_radius([0, 1, 5], [0.9, 0.9, 0.8]) == 5.0


def test_cor_is_undefined_when_the_reference_is_at_chance():
    assert critical_radius([0, 1], [0.5, 0.9]) is None
    assert critical_radius([0, 1], [0.53, 0.9]) is None  # within the default margin of 0.05
    assert critical_radius([0, 1], [0.2, 0.9]) is None
    assert critical_radius([0, 1], [0.53, 0.5], margin=0.01) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("rhos", "aucs", "message"),
    [
        ([0.5, 1.0], [0.9, 0.8], "rho = 0"),
        ([0, 1], [0.9], "same length"),
        ([0, 0, 1], [0.9, 0.8, 0.7], "repeat"),
        ([0, float("nan")], [0.9, 0.8], "finite"),
    ],
)
def test_cor_rejects_malformed_sweeps(rhos, aucs, message):
    with pytest.raises(ValueError, match=message):
        critical_radius(rhos, aucs)


def test_scores_need_both_classes():
    with pytest.raises(ValueError, match="single class"):
        detection_scores([0.2, 0.8], [1, 1])
