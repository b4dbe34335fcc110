"""Checkpoints cross transformers versions: a folder saved in one CI environment loads in another and decodes the same.

    python .ci/checkpoint_roundtrip.py save FOLDER    # with the package: a tiny checkpoint + the tokens it generates
    python .ci/checkpoint_roundtrip.py check FOLDER   # without the package (trust_remote_code) and with it

`save` runs in one environment (say the newest transformers), `check` in another (the declared minimums) and the
other way round, so the code that `save_pretrained` copies into a checkpoint is proven on both versions, and the
installed package still reads the folder. `check` hides the package while it loads the remote code, as on a machine
that never installed it.
"""

import json
import sys
from pathlib import Path

import numpy as np

# One clip per task family: a label (3 tokens) and a lifted pose (3 * 17 bins + start + EOT).
CASES = {"action_recognition": ("ntu25", 25), "pose_estimation": ("h36m17", 17)}


def clip(num_joints: int) -> np.ndarray:
    rng = np.random.default_rng(num_joints)
    t = np.linspace(0.0, 1.0, 14)[:, None, None]
    return rng.normal(0.0, 0.4, (1, num_joints, 3)) + 0.15 * np.sin(6.0 * t + rng.uniform(0, 3, (1, num_joints, 3)))


def generate_all(model, processor) -> dict:
    tokens = {}
    for task, (layout, joints) in CASES.items():
        inputs = processor(clip(joints), task=task, layout=layout, return_tensors="pt")
        tokens[task] = model.generate(**inputs).tolist()
    return tokens


def save(folder: Path) -> None:
    import transformers

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from ups_checkpoint import tiny_model, tiny_processor

    model, processor = tiny_model(), tiny_processor()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    record = {"transformers": transformers.__version__, "tokens": generate_all(model, processor)}
    (folder / "expected_tokens.json").write_text(json.dumps(record))
    print(f"saved {folder} with transformers {transformers.__version__}")


def check(folder: Path) -> None:
    import transformers
    from transformers import AutoModel, AutoProcessor

    expected = json.loads((folder / "expected_tokens.json").read_text())
    hidden, sys.modules["modeling_ups"] = sys.modules.get("modeling_ups"), None  # as if never installed
    try:
        loaded = {"remote code": (AutoModel.from_pretrained(folder, trust_remote_code=True).eval(),
                                  AutoProcessor.from_pretrained(folder, trust_remote_code=True))}
    finally:
        del sys.modules["modeling_ups"]
        if hidden is not None:
            sys.modules["modeling_ups"] = hidden
    import modeling_ups  # noqa: F401  (registers UPS with the Auto classes)

    loaded["installed package"] = (AutoModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder))
    for how, (model, processor) in loaded.items():
        tokens = generate_all(model, processor)
        if tokens != expected["tokens"]:
            raise SystemExit(f"{folder} loaded with {how} decodes {tokens}, saved with {expected['tokens']}")
        print(f"{folder}: saved with transformers {expected['transformers']}, loaded with {how} on "
              f"{transformers.__version__} ({type(model).__module__}): identical tokens")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("save", "check"):
        raise SystemExit(__doc__)
    {"save": save, "check": check}[sys.argv[1]](Path(sys.argv[2]))
