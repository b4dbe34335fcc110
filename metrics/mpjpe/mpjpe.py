"""MPJPE (mean per-joint position error) as a Hugging Face ``evaluate`` metric.

The numbers come from ``modeling_ups.evaluation.metrics.mpjpe``; this script only adapts it to the
``evaluate`` interface (batched ``add_batch``/``compute``), so it needs the ``ups`` package installed.
"""

import datasets
import evaluate

try:  # indented on purpose: evaluate would otherwise tell users to `pip install modeling_ups`
    from modeling_ups.evaluation.metrics import mpjpe
except ImportError as err:
    raise ImportError(
        "The mpjpe metric computes with the `ups` package (module modeling_ups.evaluation.metrics); "
        "install it from its checkout with `pip install -e .`"
    ) from err

_DESCRIPTION = """\
Mean per-joint position error: the mean Euclidean distance between predicted and ground-truth joints,
in the unit of the inputs (millimetres on Human3.6M, protocol 1). With `root_joint`, both poses are made
relative to that joint (or the mean of several joints) first.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `(J, 3)` arrays): predicted joints, one pose per example.
    references (`list` of `(J, 3)` arrays): ground-truth joints, same shapes and unit.
    root_joint (`int` or `list[int]`, *optional*): joint(s) whose mean is subtracted from each pose first.
Returns:
    mpjpe (`float`): mean per-joint position error, unit of the inputs.
Examples:
    >>> import evaluate
    >>> metric = evaluate.load("metrics/mpjpe")
    >>> metric.compute(predictions=[[[0, 0, 0], [3, 4, 0]]], references=[[[0, 0, 0], [0, 0, 0]]])
    {'mpjpe': 2.5}
"""

_CITATION = """\
@article{ionescu2014human36m,
  title={Human3.6M: Large Scale Datasets and Predictive Methods for 3D Human Sensing in Natural Environments},
  author={Ionescu, Catalin and Papava, Dragos and Olaru, Vlad and Sminchisescu, Cristian},
  journal={IEEE Transactions on Pattern Analysis and Machine Intelligence},
  volume={36}, number={7}, pages={1325--1339}, year={2014}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Mpjpe(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Array2D(shape=(None, 3), dtype="float64"),
                    "references": datasets.Array2D(shape=(None, 3), dtype="float64"),
                }
            ),
            reference_urls=["http://vision.imar.ro/human3.6m/"],
        )

    def _compute(self, predictions, references, root_joint=None):
        return {"mpjpe": mpjpe(predictions, references, root_joint=root_joint)}
