"""The benchmark suite runs: every function of bench/benchmarks.py at toy sizes (ups-tiny shrunk further, one
timed repeat), run_all's target check and its outputs. Timings are not asserted (speed is for bench/, not tests);
the structure and the physically necessary relations are."""

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import benchmarks as B  # noqa: E402
import run_all  # noqa: E402
from harness import PeakRSS, build_model, load_config, load_processor, make_raw_clips, measure  # noqa: E402

TINY = {"tokenizer_channels": [8, 8, 8], "encoder_attention_dim": 16, "encoder_attention_heads": 2,
        "encoder_ffn_dim": 16, "encoder_layers": 2, "d_model": 16, "decoder_attention_heads": 2,
        "decoder_ffn_dim": 16, "decoder_layers": 1, "routing_embedding_dim": 8}
FAST = {"repeats": 1, "warmup": 0}


@pytest.fixture(scope="module")
def processor():
    return load_processor("ntu60")


@pytest.fixture(scope="module")
def model(processor):
    return build_model(load_config("ups-tiny", processor, **TINY))


def _check_rows(section, name):
    assert section["name"] == name
    assert section["rows"], "a section without rows"
    for row in section["rows"]:
        assert row["median_ms"] > 0 and row["min_ms"] <= row["median_ms"]
        assert row["rate"] == pytest.approx(row["batch"] / (row["median_ms"] / 1e3))
    json.dumps(section)  # JSON-ready


def test_measure_keeps_every_repeat():
    calls = []
    timing = measure(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(timing.times_s) == 3
    assert timing.min_s <= timing.median_s
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, repeats=0)


def test_peak_rss_sees_torch_allocations():
    with PeakRSS() as memory:
        block = torch.ones(64, 1024, 1024)  # 256 MiB outside Python's allocator
        block.add_(1)
    assert memory.delta > 128 * 1024**2
    del block


def test_raw_clips_shape():
    clips = make_raw_clips(3, 2, 10, 17, 2)
    assert len(clips) == 3 and clips[0].shape == (2, 10, 17, 2) and (clips[0] > 0).all()


def test_recognition_and_early_prediction(model, processor):
    section = B.bench_recognition(model, processor, batch_sizes=(2,), frames=12, **FAST)
    _check_rows(section, "recognition")
    assert len(section["rows"]) == 3 and section["ratios"][2]["generate_over_forward"] > 0
    early = B.bench_early_prediction(model, processor, ratios=(0.2, 0.6), batch=2, frames=12, **FAST)
    _check_rows(early, "early_prediction")
    assert [r["case"].split("%")[0] for r in early["rows"]] == ["20", "60"]


def test_lifting_cache_and_decoding(model, processor):
    section = B.bench_lifting(model, processor, batch_sizes=(2,), frames=9, **FAST)
    _check_rows(section, "lifting")
    assert set(section["ratios"][2]) == {"generate", "decoding", "decoding_share"}
    assert len(section["rows"]) == 5


def test_flops_scaling_and_options(model):
    flops = B.bench_flops(model, batch=2, frames=12, matmul_size=64, **FAST)
    _check_rows(flops, "flops")
    assert flops["forward_gflop_per_sample"] > flops["encoder_gflop_per_sample"] > 0
    scaling = B.bench_scaling(model, frames=(8, 16), batch_sizes=(1, 2), base_batch=2, base_frames=8, **FAST)
    _check_rows(scaling, "scaling")
    assert [r["axis"] for r in scaling["rows"]] == ["frames", "frames", "batch", "batch"]
    options = B.bench_options(model, batch=2, frames=8, repeats=1, warmup=1)
    _check_rows(options, "options")
    assert options["rows"][0]["max_abs_diff"] == 0.0 and options["rows"][1]["max_abs_diff"] > 0.0


def test_training_memory_and_loader_in_process():
    job_overrides = {"overrides": TINY}
    training = B._training_worker({"kind": "training", "config": "ups-tiny", "batch": 2, "persons": 2,
                                   "frames": 8, "steps": 1, "warmup": 0, **job_overrides})
    assert training["rate"] > 0 and training["peak_rss_gb"] > 0
    memory = B._inference_memory_worker({"kind": "inference_memory", "config": "ups-tiny", "batch": 2,
                                         "task": "pose_estimation_3d", **job_overrides})
    assert memory["peak_rss_gb"] >= memory["model_gb"] > 0
    loader = B.bench_data_loader(load_processor("synthetic"), tasks=("action_recognition_3d",), batch=4,
                                 num_rows=8, **FAST)
    _check_rows(loader, "data_loader")


def test_targets_and_outputs(model, processor, tmp_path):
    sections = [B.bench_recognition(model, processor, batch_sizes=(16,), frames=4, **FAST),
                B.bench_flops(model, batch=2, frames=8, matmul_size=64, **FAST)]
    targets = {t["key"]: t for t in run_all.check_targets(sections)}
    assert targets["recognition_samples_per_s"]["met"] == (sections[0]["rows"][0]["rate"] >= 12.7)
    assert targets["lifting_seq_per_s"]["met"] is None  # section not run
    result = {"environment": {**run_all.environment(), "config": "tiny", "parameters_m": 0.1, "precision": "fp32",
                              "compile": False, "quick": True, "load_average_end": [0, 0, 0], "duration_s": 1.0},
              "sections": sections, "targets": list(targets.values())}
    text = run_all.markdown(result)
    assert "| recognition generate() end to end, batch 16 (samples/s) |" in text
    assert "## Encoder FLOPs and efficiency" in text
