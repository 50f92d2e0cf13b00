"""optimization_collapse: detection scores, the collapse flag and the Critical Optimization Radius (COR)."""

import datasets
import evaluate

from corit_hf.evaluation.collapse import DEFAULT_MARGIN, DEFAULT_THRESHOLD, collapse_report, critical_radius


_DESCRIPTION = """
Scores a forged-image detector and tells whether its training collapsed to chance.

From fake probabilities (`predictions`) and labels (`references`, 1 = fake, 0 = real) it returns the field's
scores: ROC AUC, average precision, accuracy at a threshold overall and on real and fake images separately,
accuracy at the best threshold, the equal error rate and the true-positive rate at 1% and 5% false-positive rate;
and `collapsed`: True when the AUC is within `margin` of 0.5 or the detector gives one label to at least 95% of
the inputs.

Given a SAM radius sweep (`rhos` and the held-out AUC of the run trained with each, `aucs`; rho = 0 included),
it also returns the Critical Optimization Radius `cor`: the largest rho whose run keeps at least half of the
rho = 0 run's above-chance AUC (AUC - 0.5), interpolated linearly between grid points.

The definitions live in `corit_hf.evaluation.collapse`, shared with `corit evaluate` and `corit study`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): fake probability of each image, in [0, 1].
    references (`list` of `int`): the true label of each image: 1 = fake, 0 = real. Both must occur.
    rhos (`list` of `float`, *optional*): the SAM radii of a sweep; must include 0.
    aucs (`list` of `float`, *optional*): the held-out AUC of the run trained with each rho (average seeds first).
    threshold (`float`, *optional*, defaults to 0.5): fake probability above which an image is called fake
        (exactly 0.5 is real, as argmax over [real, fake] logits decides).
    margin (`float`, *optional*, defaults to 0.05): AUC distance from 0.5 that counts as chance.

Returns:
    auc (`float`): ROC AUC of the fake probabilities, in [0, 1]; 0.5 is chance.
    ap (`float`): average precision with fake as the positive class.
    accuracy (`float`): accuracy at `threshold`.
    real_accuracy (`float`): share of real images scored at or below `threshold`.
    fake_accuracy (`float`): share of fake images scored above `threshold`.
    best_accuracy (`float`): the highest accuracy any threshold reaches.
    eer (`float`): equal error rate, where false-positive and false-negative rates meet.
    tpr_at_fpr_1 (`float`): the largest share of fakes caught at a threshold that flags at most 1% of reals.
    tpr_at_fpr_5 (`float`): the same at most 5% of reals flagged.
    collapsed (`bool`): whether the detector is at chance or constant.
    n (`int`): number of images scored.
    cor (`float` or `None`, only with `rhos` and `aucs`): the Critical Optimization Radius; the largest rho of
        the grid when no run falls below the level (COR is at least that), None when the rho = 0 run is at chance
        (AUC no more than `margin` above 0.5).
    For COR alone pass `predictions=[]` and `references=[]` (evaluate needs its inputs); only `cor` is returned.

Examples:
    >>> metric = evaluate.load("path/to/corit_hf/metrics/optimization_collapse")
    >>> metric.compute(predictions=[0.1, 0.9, 0.2, 0.8], references=[0, 1, 0, 1])["auc"]
    1.0
    >>> metric.compute(predictions=[], references=[], rhos=[0, 0.5, 1.0], aucs=[0.9, 0.8, 0.6])["cor"]
    0.75
"""

_CITATION = """
@article{liu2026beyond,
  title  = {Beyond Semantic Priors: Mitigating Optimization Collapse for Generalizable Visual Forensics},
  author = {Liu and Shi and Xing and Yin and Zhang},
  year   = {2026}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class OptimizationCollapse(evaluate.Metric):
    """The field's detection scores, the collapse flag and, for a rho sweep, COR."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int32")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html#roc-metrics"],
        )

    def _compute(
        self,
        predictions: list[float] | None = None,
        references: list[int] | None = None,
        rhos: list[float] | None = None,
        aucs: list[float] | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
    ) -> dict:
        if (rhos is None) != (aucs is None):
            raise ValueError("Pass both `rhos` and `aucs` to compute COR, or neither.")
        results = {}
        if predictions:
            results.update(collapse_report(predictions, references, threshold, margin))
        if rhos is not None:
            results["cor"] = critical_radius(rhos, aucs, margin)
        if not results:
            raise ValueError("Pass `predictions` and `references`, or a sweep as `rhos` and `aucs`.")
        return results
