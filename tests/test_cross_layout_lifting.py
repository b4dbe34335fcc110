"""Lifting from a 2D layout that is not the 3D layout: MPII-16 detections in, Human3.6M-17 joints out, as VideoPose3D
trains on its Stacked-Hourglass files. The model learns the mapping (`UPSConfig.pose_target_layouts`); rows come as
`ups convert videopose3d` writes them for `sh_*` sources (`poses_2d` in `layout_2d`, `poses` in `layout`)."""

import numpy as np
import pytest
import torch
from transformers import pipeline

from modeling_ups import UPSConfig, UPSFeatureExtractor, UPSForPoseSequenceModeling, UPSProcessor, UPSTokenizer
from modeling_ups.skeletons import LAYOUTS
from modeling_ups.training.data import TaskCollator
from ups_checkpoint import LABELS, randomise_untrained_parts

MODEL_LAYOUTS = ["h36m17", "mpii16"]
TARGETS = {"mpii16": "h36m17"}
FRAMES = 12
POSE_TOKENS = 3 * 17 + 1  # x, y, z bins of every H36M joint, then EOT_PE


def build(targets=TARGETS):
    torch.manual_seed(0)
    config = UPSConfig(
        num_label_tokens=len(LABELS), num_bins=16, max_frames=16, layouts=[LAYOUTS[n].to_dict() for n in MODEL_LAYOUTS],
        pose_target_layouts=targets, tokenizer_channels=[4, 4, 8], tokenizer_temporal_strides=[1, 2, 2],
        temporal_kernel_size=3, encoder_layers=2, encoder_blocks_per_layer=2, encoder_attention_heads=2,
        encoder_attention_dim=16, encoder_ffn_dim=16, routing_embedding_dim=8, d_model=16, decoder_layers=2,
        decoder_attention_heads=2, decoder_ffn_dim=32, dropout=0.0,
    )
    processor = UPSProcessor(
        UPSFeatureExtractor(layouts=MODEL_LAYOUTS, max_frames=16),
        UPSTokenizer(labels=LABELS, num_bins=16, coordinate_range=[[-1000, 1000]]),
        pose_target_layouts=targets,
    )
    return randomise_untrained_parts(UPSForPoseSequenceModeling(config)), processor


def sh_row(seed: int) -> dict:
    """A recording as the converter stores a Stacked-Hourglass source ((T, M, J, C), datasets_scripts/schema.py):
    16 MPII joints in, 17 H36M joints (mm) out."""
    rng = np.random.default_rng(seed)
    return {
        "poses": rng.normal(0.0, 300.0, (FRAMES, 1, 17, 3)).astype(np.float32),
        "poses_2d": rng.normal(0.0, 0.3, (FRAMES, 1, 16, 2)).astype(np.float32),
        "layout": "h36m17",
        "layout_2d": "mpii16",
        "label": -1,
    }


def test_training_batches_take_mpii16_input_and_h36m17_targets():
    model, processor = build()
    batch = TaskCollator(processor, "pose_estimation_3d", dataset=None, train=True)(
        [((i,), sh_row(i)) for i in range(3)]
    )
    assert batch["pose_values"].shape[-2] == 16  # the detector's joints, no hand-made conversion
    assert batch["layout_ids"].tolist() == [MODEL_LAYOUTS.index("mpii16")] * 3
    assert batch["labels"].shape == (3, POSE_TOKENS)

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

    model.eval()
    generated = model.generate(**{k: v for k, v in batch.items() if k != "labels"})
    assert generated.shape == (3, 1 + POSE_TOKENS)  # the constraint counts the target layout's joints
    result = processor.post_process(generated, task="pose_estimation", layout="mpii16")[0]
    assert result["keypoints_3d"].shape == (1, 17, 3) and result["layout"] == "h36m17"


def test_pipeline_returns_h36m17_joints_in_millimetres():
    model, processor = build()
    pipe = pipeline("pose-sequence-modeling", model=model.eval(), processor=processor)
    keypoints_2d = sh_row(7)["poses_2d"][:, 0]
    out = pipe(keypoints_2d, task="pose_estimation", layout="mpii16")
    assert out["keypoints_3d"].shape[-2:] == (17, 3)
    assert out["joint_names"] == list(LAYOUTS["h36m17"].joint_names)
    assert out["units"] == "mm" and out["layout"] == "h36m17"
    assert np.isfinite(out["keypoints_3d"]).all() and np.abs(out["keypoints_3d"]).max() <= 1000
    every_frame = pipe(keypoints_2d, task="pose_estimation", layout="mpii16", frames="all")
    assert every_frame["keypoints_3d"].shape == (FRAMES, 17, 3)


def test_processor_keeps_the_mapping_and_checks_it_against_the_model(tmp_path):
    model, processor = build()
    processor.save_pretrained(tmp_path)
    reloaded = UPSProcessor.from_pretrained(tmp_path)
    assert reloaded.pose_target_layouts == TARGETS
    reloaded.check_model_config(model.config)
    _, unmapped = build(targets={})
    with pytest.raises(ValueError, match="pose_target_layouts"):
        unmapped.check_model_config(model.config)
    with pytest.raises(ValueError, match=r"\['coco17'\] that are not in layouts"):
        UPSConfig(layouts=[LAYOUTS["h36m17"].to_dict()], pose_target_layouts={"h36m17": "coco17"})
