"""P-MPJPE (MPJPE after Procrustes alignment) as a Hugging Face ``evaluate`` metric.

The numbers come from ``modeling_ups.evaluation.metrics.p_mpjpe``; this script only adapts it to the
``evaluate`` interface (batched ``add_batch``/``compute``), so it needs the ``ups`` package installed.
"""

import datasets
import evaluate

try:  # indented on purpose: evaluate would otherwise tell users to `pip install modeling_ups`
    from modeling_ups.evaluation.metrics import p_mpjpe
except ImportError as err:
    raise ImportError(
        "The p_mpjpe metric computes with the `ups` package (module modeling_ups.evaluation.metrics); "
        "install it from its checkout with `pip install -e .`"
    ) from err

_DESCRIPTION = """\
P-MPJPE (Human3.6M protocol 2): the mean per-joint position error after aligning each predicted pose to its
reference with the best similarity transform (rotation, uniform scale, translation; reflections excluded),
in the unit of the inputs. It measures pose shape independently of global orientation, size and position.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `(J, 3)` arrays): predicted joints, one pose per example.
    references (`list` of `(J, 3)` arrays): ground-truth joints, same shapes and unit.
    root_joint (`int` or `list[int]`, *optional*): accepted for symmetry with `mpjpe`; the alignment removes
        any translation, so it does not change the result.
Returns:
    p_mpjpe (`float`): MPJPE after per-pose Procrustes alignment, unit of the inputs.
Examples:
    >>> import evaluate
    >>> metric = evaluate.load("metrics/p_mpjpe")
    >>> pose = [[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3]]
    >>> shifted_and_scaled = [[2 * x + 5, 2 * y, 2 * z] for x, y, z in pose]
    >>> round(metric.compute(predictions=[shifted_and_scaled], references=[pose])["p_mpjpe"], 6)
    0.0
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
class PMpjpe(evaluate.Metric):
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
        return {"p_mpjpe": p_mpjpe(predictions, references, root_joint=root_joint)}
