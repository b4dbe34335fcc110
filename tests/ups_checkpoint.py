"""A tiny UPS checkpoint and skeleton files in every supported format, shared by test_pipeline, test_cli and test_hub.

The model is random but has its zero-initialised parts (topology refinement scale, topology offsets) and batch-norm
statistics randomised as in test_modeling, so every branch shapes the outputs, as in a trained model.
"""

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_ups import UPSConfig, UPSFeatureExtractor, UPSForPoseSequenceModeling, UPSProcessor, UPSTokenizer

LABELS = ["drink water", "walking", "sitting down", "jumping jacks", "hand waving", "kicking", "clapping"]
MAX_FRAMES = 24


@pytest.fixture(scope="module", autouse=False)
def single_thread():
    """One intra-op thread while a module runs: the tiny model's ops are too small to gain from more, and with
    another process busy on the machine (2 cores) OpenMP's waiting threads slow generation down 10-30x."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_config() -> UPSConfig:
    return UPSConfig(
        num_label_tokens=len(LABELS), num_bins=16, max_frames=MAX_FRAMES, tokenizer_channels=[4, 4, 8],
        tokenizer_temporal_strides=[1, 2, 2], temporal_kernel_size=3, encoder_layers=2, encoder_blocks_per_layer=2,
        encoder_attention_heads=2, encoder_attention_dim=16, encoder_ffn_dim=16, routing_embedding_dim=8, d_model=16,
        decoder_layers=2, decoder_attention_heads=2, decoder_ffn_dim=32, dropout=0.0,
    )


def randomise_untrained_parts(model):
    """Randomise the zero-initialised topology refinement (alpha, offsets) and the normalisation statistics, so
    every branch influences the outputs as in a trained model."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith(("alpha", "topology_offset", "running_mean")):
                tensor.normal_(0.0, 0.5)
            elif name.endswith(("running_var", "norm.weight")):
                tensor.uniform_(0.5, 1.5)
    return model.eval()


def tiny_model(seed: int = 0) -> UPSForPoseSequenceModeling:
    torch.manual_seed(seed)
    return randomise_untrained_parts(UPSForPoseSequenceModeling(copy.deepcopy(tiny_config())))


def tiny_processor(**extractor_kwargs) -> UPSProcessor:
    extractor_kwargs.setdefault("max_frames", MAX_FRAMES)
    return UPSProcessor(UPSFeatureExtractor(**extractor_kwargs),
                        UPSTokenizer(labels=LABELS, num_bins=16, coordinate_range=[[-1000, 1000]]))


def save_checkpoint(folder) -> Path:
    """model.save_pretrained + processor.save_pretrained: what a training run leaves (no pipeline code, no card)."""
    folder = Path(folder)
    tiny_model().save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------- skeleton data
def motion(num_frames=14, num_joints=25, channels=3, persons=1, seed=0, scale=1.0) -> np.ndarray:
    """A smooth random skeleton sequence (persons, T, J, C) (persons axis dropped when persons is None)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, num_frames)[None, :, None, None]
    base = rng.normal(0.0, 0.4, (max(persons or 1, 1), 1, num_joints, channels))
    phase = rng.uniform(0.0, 3.0, (max(persons or 1, 1), 1, num_joints, channels))
    poses = (base + 0.15 * np.sin(6.0 * t + phase)) * scale
    return poses[0] if persons is None else poses


def write_ntu_skeleton(path, joints_m: np.ndarray) -> Path:
    """NTU RGB+D `.skeleton` text for joints (M, T, 25, 3) in metres (every body tracked in every frame)."""
    persons, frames = joints_m.shape[:2]
    lines = [str(frames)]
    for t in range(frames):
        lines.append(str(persons))
        for m in range(persons):
            lines.append(f"{72057594037931100 + m} 0 1 1 1 1 0 0.1 0.2 2")
            lines.append("25")
            for x, y, z in joints_m[m, t]:
                lines.append(f"{x:.6f} {y:.6f} {z:.6f} 250.1 200.2 1000.3 500.4 0.1 0.2 0.3 0.9 2")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_kinetics_json(path, xy: np.ndarray, scores: np.ndarray) -> Path:
    """ST-GCN Kinetics-skeleton JSON for normalised OpenPose-18 coordinates xy (M, T, 18, 2), scores (M, T, 18)."""
    frames = []
    for t in range(xy.shape[1]):
        skeletons = [{"pose": [round(float(v), 6) for v in xy[m, t].reshape(-1)],
                      "score": [round(float(s), 6) for s in scores[m, t]]} for m in range(xy.shape[0])]
        frames.append({"frame_index": t + 1, "skeleton": skeletons})
    Path(path).write_text(json.dumps({"data": frames, "label": "hand waving", "label_index": 4}))
    return Path(path)


def write_alphapose_json(path, keypoints: np.ndarray) -> Path:
    """AlphaPose results for one tracked person, keypoints (T, J, 3) = x, y, score in pixels."""
    entries = [{"image_id": f"{t}.jpg", "category_id": 1, "idx": 1, "score": 2.5,
                "keypoints": [round(float(v), 4) for v in keypoints[t].reshape(-1)]} for t in range(len(keypoints))]
    Path(path).write_text(json.dumps(entries))
    return Path(path)


def env_without_package(tmp_path, **extra) -> dict:
    """Environment for a subprocess that must not import this package from the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), HF_MODULES_CACHE=str(tmp_path / "modules"),
               OMP_NUM_THREADS="1")
    env.update(extra)
    return env


HIDE_PACKAGE = """
import sys
# An editable install would make the package importable anywhere: hide it, as on a machine without it.
sys.modules["modeling_ups"] = None
try:
    import modeling_ups  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("modeling_ups is importable")
"""
