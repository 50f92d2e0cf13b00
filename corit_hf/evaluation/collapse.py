"""Detection scores, optimization collapse and the Critical Optimization Radius (COR).

The single definition of these numbers: the `optimization_collapse` metric, `corit evaluate` (and its robustness
sweeps), validation during `corit train`, the model card and `corit study` all import them from here. scikit-learn
does the arithmetic.

- The field's **detection scores** (`SCORE_NAMES`, `detection_scores`): AUC, AP, accuracy at the threshold, real and
  fake accuracy separately, best-threshold accuracy, EER, and TPR at 1% and 5% FPR.
- The **label** of a fake probability (`is_labelled_fake`): fake only *above* the threshold, so a probability of
  exactly 0.5 is real, as argmax over [real, fake] logits and the field's evaluation code (`> 0.5`) decide.

- A run has **collapsed** when its held-out AUC is within `margin` of 0.5, or when it predicts one class for at
  least 95% of its inputs.
- **COR** of a configuration is the largest rho on a sweep whose run keeps at least half of the rho=0 run's
  above-chance AUC (AUC - 0.5), interpolated linearly between that grid point and the next one. It is undefined
  (None) when the rho=0 run is itself at chance.
"""

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

from ..defaults import MARGIN as DEFAULT_MARGIN
from ..defaults import THRESHOLD as DEFAULT_THRESHOLD


ONE_CLASS_FRACTION = 0.95
"""A run that gives one label to at least this fraction of its inputs has collapsed to a constant."""
KEPT_FRACTION = 0.5
"""COR keeps runs that hold at least this fraction of the rho=0 run's above-chance AUC."""


SCORE_NAMES = {
    "auc": "AUC",
    "ap": "AP",
    "accuracy": "accuracy",
    "real_accuracy": "real acc",
    "fake_accuracy": "fake acc",
    "best_accuracy": "best acc",
    "eer": "EER",
    "tpr_at_fpr_1": "TPR@1%FPR",
    "tpr_at_fpr_5": "TPR@5%FPR",
}
"""The field's detection scores, in report order: the keys `detection_scores` returns, with short display names."""
HEADLINE_SCORES = ("auc", "ap", "accuracy")
"""The scores reported where space is short: per validation step during training and per robustness level."""


def detection_scores(
    fake_probabilities: Sequence[float], labels: Sequence[int], threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float]:
    """The field's scores of fake-probability scores (`SCORE_NAMES`): AUC, average precision, accuracy at
    `threshold` overall and on real and fake images separately, accuracy at the best threshold, equal error rate,
    and the true-positive rate at 1% and 5% false-positive rate.

    `labels` are 1 for fake and 0 for real; both classes must be present (AUC is undefined otherwise).
    """
    scores, truth = _as_arrays(fake_probabilities, labels)
    predicted = is_labelled_fake(scores, threshold).astype(int)
    fpr, tpr = _roc_points(scores, truth)
    n_fake = int(truth.sum())
    return {
        "auc": float(roc_auc_score(truth, scores)),
        "ap": float(average_precision_score(truth, scores)),
        "accuracy": float(accuracy_score(truth, predicted)),
        "real_accuracy": float(np.mean(predicted[truth == 0] == 0)),
        "fake_accuracy": float(np.mean(predicted[truth == 1] == 1)),
        # the highest accuracy any threshold reaches (the oracle threshold of the field's "best accuracy")
        "best_accuracy": float(np.max((tpr * n_fake + (1.0 - fpr) * (truth.size - n_fake)) / truth.size)),
        "eer": _crossing_error_rate(fpr, tpr),
        "tpr_at_fpr_1": _tpr_at_fpr(fpr, tpr, 0.01),
        "tpr_at_fpr_5": _tpr_at_fpr(fpr, tpr, 0.05),
    }


def _roc_points(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every point of the ROC curve (fpr, tpr), collinear ones included: a plot may drop them, but the best TPR at
    a low FPR can sit on one."""
    fpr, tpr, _ = roc_curve(truth, scores, drop_intermediate=False)
    return fpr, tpr


def _tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """The largest true-positive rate of a threshold whose false-positive rate is at most `max_fpr` (ROC points,
    no interpolation)."""
    return float(tpr[fpr <= max_fpr].max())


def equal_error_rate(fake_probabilities: Sequence[float], labels: Sequence[int]) -> float:
    """The error rate where false-positive and false-negative rates meet, interpolated on the ROC curve."""
    return _crossing_error_rate(*_roc_points(np.asarray(fake_probabilities), np.asarray(labels)))


def _crossing_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Where the false-negative rate 1 - tpr meets fpr along the ROC curve, interpolated between its points."""
    gap = (1.0 - tpr) - fpr  # non-increasing along the curve, from 1 at (0, 0) to -1 at (1, 1)
    crossing = int(np.argmax(gap <= 0))
    if gap[crossing] == 0:
        return float(fpr[crossing])
    before = crossing - 1
    step = gap[before] / (gap[before] - gap[crossing])
    return float(fpr[before] + step * (fpr[crossing] - fpr[before]))


def is_labelled_fake(fake_probabilities: float | Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Whether each fake probability gets the label fake: strictly above `threshold`, so a detector that cannot
    tell (exactly 0.5) says real, as argmax over [real, fake] logits and the field's `> 0.5` do."""
    return np.asarray(fake_probabilities, dtype=float) > threshold


def majority_fraction(fake_probabilities: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> float:
    """The share of inputs given the more frequent of the two labels at `threshold`."""
    fake_share = float(is_labelled_fake(fake_probabilities, threshold).mean())
    return max(fake_share, 1.0 - fake_share)


def is_collapsed(auc: float, majority: float = 0.0, margin: float = DEFAULT_MARGIN) -> bool:
    """Collapsed: AUC within `margin` of chance, or one label for at least 95% of inputs (`majority`)."""
    return abs(auc - 0.5) <= margin or majority >= ONE_CLASS_FRACTION


def collapse_report(
    fake_probabilities: Sequence[float],
    labels: Sequence[int],
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
) -> dict[str, float | bool | int]:
    """`detection_scores` plus the `collapsed` flag and the number of inputs `n`: one held-out evaluation."""
    scores = detection_scores(fake_probabilities, labels, threshold)
    majority = majority_fraction(fake_probabilities, threshold)
    return {**scores, "collapsed": is_collapsed(scores["auc"], majority, margin), "n": len(labels)}


def critical_radius(rhos: Sequence[float], aucs: Sequence[float], margin: float = DEFAULT_MARGIN) -> float | None:
    """COR of one configuration's sweep: `aucs[i]` is the held-out AUC of the run trained with `rhos[i]`.

    The sweep must contain rho = 0. Returns the largest rho whose run keeps at least half of the rho=0 run's
    above-chance AUC, interpolated linearly towards the next grid point where the AUC falls below that level.
    When every run keeps it, that is the largest rho of the grid (COR is at least that). None when the rho=0
    run is itself at chance (AUC no more than `margin` above 0.5): there is nothing to keep, so COR is undefined.
    """
    grid, values = _sorted_sweep(rhos, aucs)
    reference = values[0] - 0.5
    if reference <= margin:
        return None
    surplus = values - (0.5 + KEPT_FRACTION * reference)  # >= 0 where a run keeps enough
    last_kept = int(np.flatnonzero(surplus >= 0)[-1])
    if last_kept == len(grid) - 1:
        return float(grid[last_kept])
    drop = surplus[last_kept] - surplus[last_kept + 1]
    step = surplus[last_kept] / drop
    return float(grid[last_kept] + step * (grid[last_kept + 1] - grid[last_kept]))


def _sorted_sweep(rhos: Sequence[float], aucs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The sweep sorted by rho, checked for matching lengths, finite values and a rho=0 run."""
    grid = np.asarray(rhos, dtype=float)
    values = np.asarray(aucs, dtype=float)
    if grid.shape != values.shape or grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"rhos and aucs must be two lists of the same length, got {grid.shape} and {values.shape}.")
    if not (np.isfinite(grid).all() and np.isfinite(values).all()):
        raise ValueError("rhos and aucs must be finite numbers.")
    if len(set(grid.tolist())) != grid.size:
        raise ValueError(f"rhos must not repeat a value, got {grid.tolist()}; average seeds before computing COR.")
    order = np.argsort(grid)
    grid, values = grid[order], values[order]
    if grid[0] != 0:
        raise ValueError(f"A sweep needs a rho = 0 run as its reference, got rhos {grid.tolist()}.")
    return grid, values


def _as_arrays(fake_probabilities: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and 0/1 labels as arrays, checked for matching length, finite scores and both classes."""
    scores = np.asarray(fake_probabilities, dtype=float)
    truth = np.asarray(labels)
    if scores.shape != truth.shape or scores.ndim != 1:
        raise ValueError(f"predictions and references must have the same length, got {scores.shape}, {truth.shape}.")
    if not np.isfinite(scores).all():
        raise ValueError("predictions must be finite fake probabilities.")
    if not set(np.unique(truth).tolist()) <= {0, 1}:
        raise ValueError("references must be 0 (real) or 1 (fake).")
    if np.unique(truth).size < 2:
        raise ValueError("references hold a single class; AUC needs both real (0) and fake (1) examples.")
    return scores, truth.astype(int)


__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_THRESHOLD",
    "HEADLINE_SCORES",
    "SCORE_NAMES",
    "collapse_report",
    "critical_radius",
    "detection_scores",
    "equal_error_rate",
    "is_collapsed",
    "is_labelled_fake",
    "majority_fraction",
]
