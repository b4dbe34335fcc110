"""The task and vocabulary spec (configuration_ups) is the one home of every task fact: the tokenizer, feature
extractor, processor, pipeline, model, metrics and training read it, and no other module writes a task index."""

import re
from pathlib import Path

import numpy as np
import pytest

from modeling_ups.configuration_ups import (
    EOT_TOKENS,
    TASK_SHORTHANDS,
    UPS_TASKS,
    UPSConfig,
    observed_frames,
    resolve_task,
    task_emits_pose,
    task_eot_index,
)
from modeling_ups.evaluation import metrics
from modeling_ups.feature_extraction_ups import UPSFeatureExtractor
from modeling_ups.tokenization_ups import UPSTokenizer

ROOT = Path(__file__).resolve().parents[1]
# A task or end-of-task index written as a number, or a second table of them.
LITERAL_TASK_INDEX = re.compile(r"eot_token_ids\[\s*\d|EOT_INDEX\s*=|TASK_TO_EOT_INDEX\s*\[|tasks\[\s*\d\s*\]")


def test_no_module_outside_the_spec_writes_a_task_index():
    offenders = []
    for folder in ("modeling_ups", "examples", "bench", "datasets_scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "configuration_ups.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if LITERAL_TASK_INDEX.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "task indices outside configuration_ups.py:\n" + "\n".join(offenders)


def test_the_observed_frame_rule_is_shared_by_the_extractor_and_the_metrics():
    assert metrics.observed_frames is observed_frames
    ratio = 0.1 * 3  # 0.30000000000000004: ceil(ratio * 10) alone would keep 4 frames
    assert observed_frames(10, ratio) == 3
    extractor = UPSFeatureExtractor(normalize=False)
    clip = np.random.default_rng(0).normal(size=(10, 25, 3)) + 1.0
    for r in (ratio, 0.25, 0.5, 1.0):
        kept = extractor(clip, task="early_action_prediction", observation_ratio=r, return_tensors="np")
        assert int(kept["attention_mask"].sum()) == observed_frames(10, r)


@pytest.mark.parametrize("task", UPS_TASKS)
def test_every_task_resolves_to_one_eot_and_one_output_kind(task):
    config = UPSConfig(num_label_tokens=5, num_bins=4)
    tokenizer = UPSTokenizer(labels=list("abcde"), num_bins=4)
    assert config.task_eot_token_id(task) == tokenizer.task_eot_token_id(task) == config.eot_token_ids[
        task_eot_index(task)]
    assert tokenizer.convert_ids_to_tokens(config.task_eot_token_id(task)) == EOT_TOKENS[task_eot_index(task)]
    assert task_emits_pose(task) == (tokenizer.convert_ids_to_tokens(config.task_eot_token_id(task)) == "<eot_pe>")


def test_shorthands_name_their_tasks():
    assert resolve_task("action_recognition", is_2d=True) == "action_recognition_2d"
    assert resolve_task("action_recognition", is_2d=False) == "action_recognition_3d"
    for shorthand in TASK_SHORTHANDS:
        assert task_emits_pose(shorthand) == (shorthand == "pose_estimation")
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_task("action_recognition")
    with pytest.raises(ValueError, match="Unknown task 'dancing'"):
        task_eot_index("dancing")


def test_config_and_tokenizer_share_one_vocabulary_layout():
    config = UPSConfig(num_label_tokens=5, num_bins=4)
    tokenizer = UPSTokenizer(labels=list("abcde"), num_bins=4)
    for name in ("vocab_size", "label_token_offset", "label_token_ids", "bin_token_offset", "eot_token_ids"):
        assert getattr(config, name) == getattr(tokenizer, name), name
    assert len(tokenizer.get_vocab()) == config.vocab_size
