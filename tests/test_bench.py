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
import latency  # noqa: E402
import peers as P  # noqa: E402
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


def test_compile_encoder_compiles_the_encoder_generate_runs(processor):
    """`run_all.py --compile` times compiled code: generate() reaches the encoder through `encode`, and that call
    must go through dynamo (traced here with the eager backend, which compiles nothing, to stay fast)."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from harness import make_inputs

    compiled = build_model(load_config("ups-tiny", processor, **TINY))
    B.compile_encoder(compiled, backend="eager")
    inputs = make_inputs(compiled.config, "ntu25", 2, 1, 8, "action_recognition_3d")
    torch._dynamo.reset()
    counters.clear()
    tokens = compiled.generate(**inputs)
    assert counters["stats"]["calls_captured"] > 0
    torch._dynamo.reset()
    assert tokens.shape == (2, 3)


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
    ratio = sections[0]["ratios"][16]["generate_over_forward"]
    assert targets["generate_over_forward"]["met"] == (ratio <= 1.2)
    assert targets["lifting_cache_speedup"]["met"] is None  # section not run
    assert targets["ups_base_over_ctr_gcn"]["met"] is None  # no peers section: nothing typed in stands for it
    result = {"environment": {**run_all.environment(), "config": "tiny", "parameters_m": 0.1, "precision": "fp32",
                              "compile": False, "quick": True, "load_average_end": [0, 0, 0], "duration_s": 1.0},
              "sections": sections, "targets": list(targets.values())}
    text = run_all.markdown(result)
    assert "| recognition generate() / one plain forward, batch 16 |" in text
    assert "## Encoder FLOPs and efficiency" in text


# ------------------------------------------------------------------------------------------------ bench/peers.py


def _peer_row(key, side, protocol, rate, best_rate=None):
    return {"key": key, "side": side, "protocol": protocol, "rate": rate, "best_rate": best_rate or rate}


def test_peers_ratios_come_from_the_measured_rows():
    rows = [_peer_row("ctr_gcn", "peer", "recognition", 8.0, 10.0), _peer_row("st_gcn", "peer", "recognition", 4.0),
            _peer_row("ups_base", "UPS", "recognition", 20.0, 22.0),
            _peer_row("videopose3d_243_windows", "peer", "lifting", 400.0),
            _peer_row("videopose3d_243_sequence", "peer", "lifting", 5000.0),
            _peer_row("ups_base", "UPS", "lifting", 100.0)]
    ratios = {(r["protocol"], r["ups"], r["peer"]): r for r in P.compute_ratios(rows)}
    assert set(ratios) == {("recognition", "ups_base", "ctr_gcn"), ("recognition", "ups_base", "st_gcn"),
                           ("lifting", "ups_base", "videopose3d_243_windows"),
                           ("lifting", "ups_base", "videopose3d_243_sequence")}  # never across protocols
    assert ratios[("recognition", "ups_base", "ctr_gcn")]["ratio"] == pytest.approx(2.5)
    assert ratios[("recognition", "ups_base", "ctr_gcn")]["best_ratio"] == pytest.approx(2.2)
    assert "UPS faster" in ratios[("recognition", "ups_base", "st_gcn")]["text"]
    assert "peer 4.0x faster" in ratios[("lifting", "ups_base", "videopose3d_243_windows")]["text"]
    targets = {(t["ups"], t["peer"]): t for t in P.check_targets(list(ratios.values()))}
    assert targets[("ups_base", "ctr_gcn")]["met"] is True  # 2.5 >= 2.5
    assert targets[("ups_base", "videopose3d_243_windows")]["met"] is False
    assert targets[("ups_base", "videopose3d_243_sequence")]["measured"] == pytest.approx(0.02)
    assert all(t["met"] is None for t in P.check_targets([]))  # nothing measured, nothing claimed

    section = {"name": "peers", "quick": False, "ratios": list(ratios.values())}
    figures = run_all.measured_figures([section])
    assert figures["ups_base_over_ctr_gcn"] == pytest.approx(2.5)
    assert figures["ups_base_over_videopose3d_243_windows"] == pytest.approx(0.25)
    assert run_all.measured_figures([dict(section, quick=True)])["ups_base_over_ctr_gcn"] is None


def test_peers_ratio_compares_the_rounds_both_rows_ran():
    # The slow UPS row ran rounds 1-2 only, while the machine was busy; the peer ran 4 rounds, the last 2 quiet.
    ups = dict(_peer_row("ups_base", "UPS", "lifting", 0.0), batch=100, times_s=[10.0, 20.0])
    peer = dict(_peer_row("videopose3d_243_windows", "peer", "lifting", 0.0), batch=100, times_s=[2.0, 4.0, 1.0, 1.0])
    (ratio,) = P.compute_ratios([ups, peer])
    assert ratio["ratio"] == pytest.approx((100 / 15.0) / (100 / 3.0)) and ratio["rounds"] == 2
    assert ratio["best_ratio"] == pytest.approx((100 / 10.0) / (100 / 2.0))
    assert ratio["peer_rate_in_those_rounds"] == pytest.approx(100 / 3.0)


def test_peers_are_skipped_without_their_folder(tmp_path):
    found, notes = P.load_peers(None)
    assert found == {} and "no --peers folder" in notes[0]
    found, notes = P.load_peers(str(tmp_path))
    assert found == {} and len(notes) == 2 and all("does not exist" in n for n in notes)
    (tmp_path / "pyskl").mkdir()  # a folder that is no pyskl checkout: skipped with the reason, not a crash
    found, notes = P.load_peers(str(tmp_path))
    assert found == {} and any("not a pyskl checkout" in n for n in notes)


def test_peers_runner_times_ups_alone_without_peers():
    plan = {"recognition": {"batch": 2, "persons": 2, "frames": 8}, "lifting": {"frames": 3}, "repeats": 1,
            "slow_repeats": 1,
            "lifters": [("ups_base", "ups-base", 9, 1, False), ("ups_tiny_k5", "ups-tiny", 5, 5, False),
                        ("ups_tiny_parallel", "ups-tiny", 5, 1, True)],
            "flop_frames": 2, "count_flops": False, "matmul_size": 128}
    result = P.measure_side_by_side(None, plan=plan, overrides=TINY, log=lambda line: None)
    assert [(r["side"], r["protocol"], r["key"]) for r in result["rows"]] == [
        ("UPS", "recognition", "ups_base"), ("UPS", "lifting", "ups_base"), ("UPS", "lifting", "ups_tiny_k5"),
        ("UPS", "lifting", "ups_tiny_parallel")]
    assert "decoded in one call" in result["rows"][-1]["case"] and "decoded" not in result["rows"][-2]["case"]
    assert result["ratios"] == [] and all(t["met"] is None for t in result["targets"])
    assert any("peer rows skipped" in n for n in result["notes"])
    for row in result["rows"]:
        assert row["rate"] == pytest.approx(row["batch"] / (row["median_ms"] / 1e3)) and "gflop_per_item" not in row
    env = result["environment"]
    assert env["matmul_gflops"]["start"] > 0 and env["matmul_gflops"]["end"] > 0 and env["peers"] == {}
    json.dumps(result)
    assert "## Targets (issue 16)" in P.markdown(result)
    assert run_all.measured_figures([P.as_section(result)])["ups_base_over_ctr_gcn"] is None


def test_latency_runs_time_what_a_user_runs(tmp_path, monkeypatch):
    """The latency bench lets Python cache bytecode (as a user's does) and leaves the caching run out of the timing."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = latency._env(1)
    assert "PYTHONDONTWRITEBYTECODE" not in env and env["OMP_NUM_THREADS"] == "1"
    runs_file = tmp_path / "runs.txt"
    command = [sys.executable, "-c", f"open({str(runs_file)!r}, 'a').write('run\\n')"]
    times = latency._wall(command, env, runs=2)
    assert len(times) == 2 and all(t > 0 for t in times)
    assert runs_file.read_text().count("run") == 3, "one untimed warm-up run, then the timed ones"
    installed = latency.installed_packages()
    assert installed["python"] == sys.executable and installed["torch"] == torch.__version__
