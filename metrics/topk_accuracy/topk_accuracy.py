"""Top-k accuracy of class scores as a Hugging Face ``evaluate`` metric.

The numbers come from ``modeling_ups.evaluation.metrics.topk_accuracy``; this script only adapts it to the
``evaluate`` interface (batched ``add_batch``/``compute``), so it needs the ``ups`` package installed.
"""

import datasets
import evaluate

try:  # indented on purpose: evaluate would otherwise tell users to `pip install modeling_ups`
    from modeling_ups.evaluation.metrics import topk_accuracy
except ImportError as err:
    raise ImportError(
        "The topk_accuracy metric computes with the `ups` package (module modeling_ups.evaluation.metrics); "
        "install it from its checkout with `pip install -e .`"
    ) from err

_DESCRIPTION = """\
Top-k accuracy: the fraction of examples whose true class is among the k highest-scoring classes (ties go
to the lower class id). The customary action-recognition report is top-1 and top-5 (NTU RGB+D, Kinetics).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list[float]`): class scores (logits or probabilities), one row of C per example.
    references (`list` of `int`): true class ids in [0, C).
    k (`int` or `list[int]`, *optional*, defaults to `(1, 5)`): the k values; k > C counts as correct.
Returns:
    top{k} (`float`): one entry per k, e.g. `{"top1": 0.5, "top5": 1.0}`.
Examples:
    >>> import evaluate
    >>> metric = evaluate.load("metrics/topk_accuracy")
    >>> metric.compute(predictions=[[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]], references=[1, 2], k=[1, 2])
    {'top1': 0.5, 'top2': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopkAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, k=(1, 5)):
        return topk_accuracy(predictions, references, k=k)
