"""examples/train.py end to end, in subprocesses as a user runs it: loss goes down on every task, the checkpoint
folder loads with the Auto classes and predicts, 2-process CPU data parallelism is real, and a run killed at
random points and resumed ends with exactly the parameters of an uninterrupted run."""

import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modeling_ups.training import CheckpointManager

REPO = Path(__file__).resolve().parents[1]
TRAIN = str(REPO / "examples" / "train.py")
TASKS = ["pose_estimation_3d", "action_recognition_2d", "early_action_prediction_3d", "action_recognition_3d"]
# A run small enough for CI: ups-tiny, 32-frame clips, a few dozen synthetic sequences per task.
SMALL = ["--num_train_samples", "48", "--num_eval_samples", "16", "--per_device_train_batch_size", "8",
         "--num_frames", "32", "--text_encoder", "none", "--logging_steps", "1", "--seed", "3"]


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _train(output_dir, *extra, launcher=(sys.executable,), timeout=300):
    cmd = [*launcher, TRAIN, "--output_dir", str(output_dir), *SMALL, *extra]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return json.loads((Path(output_dir) / "results.json").read_text()), proc


def _log(output_dir):
    return [json.loads(line) for line in (Path(output_dir) / "log_history.jsonl").read_text().splitlines()]


def _weights(output_dir):
    return load_file(str(Path(output_dir) / "final" / "model.safetensors"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    results, proc = _train(out, "--max_steps", "24", "--learning_rate", "3e-3", "--max_eval_samples", "8",
                           "--per_device_eval_batch_size", "8", "--tasks", ",".join(TASKS))  # the paper's rotation
    (out / "stdout.txt").write_text(proc.stdout)
    return out, results


def test_training_lowers_the_loss_on_every_task(trained_run):
    out, _ = trained_run
    log = _log(out)
    for task in TASKS:
        losses = [row["loss"] for row in log if row["task"] == task]
        assert len(losses) == 6, (task, losses)
        assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 0.2, (task, losses)


def test_results_table_and_baselines_are_written(trained_run):
    out, results = trained_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["tasks_results"].keys() == set(TASKS)
    pose = on_disk["tasks_results"]["pose_estimation_3d"]
    assert pose["mpjpe"] > 0 and pose["p_mpjpe"] > 0 and pose["mean_pose_baseline_mpjpe"] > 0
    early = on_disk["tasks_results"]["early_action_prediction_3d"]["top1_at_ratio"]
    assert sorted(early) == [f"{r / 10:.1f}" for r in range(1, 11)]
    assert 0.0 <= on_disk["tasks_results"]["action_recognition_3d"]["top1"] <= 1.0


def test_evaluate_fuses_the_class_scores_of_several_checkpoints(trained_run, tmp_path):
    """examples/evaluate.py as a user runs it, with the run's checkpoint given twice at weights 1 and 2: the fused
    probabilities are the model's times 3, so every figure equals the training run's own evaluation of the same
    test clips, and the JSON names the members."""
    out, results = trained_run
    tasks = ["action_recognition_3d", "early_action_prediction_3d"]
    final = str(out / "final")
    cmd = [sys.executable, str(REPO / "examples" / "evaluate.py"), "--model", final, "--model", final,
           "--fusion_weights", "1", "2", "--tasks", ",".join(tasks), "--num_train_samples", "48",
           "--num_eval_samples", "16", "--seed", "3", "--max_eval_samples", "8", "--batch_size", "8",
           "--output", str(tmp_path / "fused.json")]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"score fusion of {final} (weight 1), {final} (weight 2)" in proc.stdout
    fused = json.loads((tmp_path / "fused.json").read_text())
    for task in tasks:
        assert fused[task].pop("score_fusion") == [{"model": final, "weight": 1.0}, {"model": final, "weight": 2.0}]
        expected = dict(results["tasks_results"][task])
        assert expected.pop("saved_scores") == str(out / "scores" / f"{task}.npz")
        assert fused[task] == expected, task
    refused = subprocess.run(cmd[:-2] + ["--fusion_weights", "1"], env=_env(), capture_output=True, text=True,
                             timeout=300, cwd=REPO)
    assert refused.returncode == 2 and "--fusion_weights needs one positive weight per --model and --scores (2)" \
        in refused.stderr


def test_the_runs_saved_scores_fuse_without_the_model_and_beside_it(trained_run, tmp_path):
    """The class probabilities examples/train.py saves in OUTPUT_DIR/scores fuse again with examples/evaluate.py,
    alone (no model, no dataset: CTR-GCN's ensemble.py) or beside a --model, into the run's own figures; a fusion
    saves its own scores; scores of other test samples are refused, naming why."""
    out, results = trained_run
    tasks = ["action_recognition_3d", "early_action_prediction_3d"]
    evaluate = [sys.executable, str(REPO / "examples" / "evaluate.py")]

    def run(*args):
        return subprocess.run([*evaluate, *args], env=_env(), capture_output=True, text=True, timeout=300, cwd=REPO)

    def figures(path):
        return {task: {k: v for k, v in r.items() if k not in ("score_fusion", "saved_scores")}
                for task, r in json.loads(Path(path).read_text()).items()}

    classification = ["action_recognition_2d", "early_action_prediction_3d", "action_recognition_3d"]
    assert sorted(p.stem for p in (out / "scores").iterdir()) == sorted(classification)  # no pose scores
    expected = {task: {k: v for k, v in results["tasks_results"][task].items() if k != "saved_scores"}
                for task in classification}
    scores = str(out / "scores")
    alone = run("--scores", scores, "--scores", scores, "--fusion_weights", "1", "3", "--output",
                str(tmp_path / "alone.json"), "--save_scores", str(tmp_path / "fused_scores"))
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert alone.stdout.count("| action_recognition_3d | top-1 |") == 1
    assert figures(tmp_path / "alone.json") == expected  # the tasks the folder holds, without --tasks
    for task in tasks:  # the saved fusion is the weighted mean: here the run's own probabilities
        with np.load(out / "scores" / f"{task}.npz") as run_scores, \
                np.load(tmp_path / "fused_scores" / f"{task}.npz") as fused_scores:
            np.testing.assert_allclose(fused_scores["probabilities"], run_scores["probabilities"], rtol=1e-6)
            assert run_scores["probabilities"].shape[:2] == ((10, 8) if task.startswith("early") else (1, 8))
    data_args = ["--tasks", ",".join(tasks), "--num_train_samples", "48", "--num_eval_samples", "16", "--seed", "3",
                 "--batch_size", "8"]
    beside = run("--model", str(out / "final"), "--scores", scores, *data_args, "--max_eval_samples", "8",
                 "--output", str(tmp_path / "beside.json"))
    assert beside.returncode == 0, beside.stderr[-3000:]
    assert f"score fusion of {out / 'final'} (weight 1), {scores} (weight 1)" in beside.stdout
    assert figures(tmp_path / "beside.json") == {task: expected[task] for task in tasks}
    other_samples = run("--model", str(out / "final"), "--scores", scores, *data_args, "--max_eval_samples", "6")
    assert other_samples.returncode != 0
    assert f"cannot fuse {scores} with the other action_recognition_3d scores: 8 test samples against 6" \
        in other_samples.stderr
    no_scores = run("--scores", str(tmp_path / "nowhere"), "--tasks", "action_recognition_3d")
    assert no_scores.returncode != 0 and "no saved action_recognition_3d scores at" in no_scores.stderr
    empty = run("--scores", str(tmp_path))
    assert empty.returncode == 2 and f"--scores {tmp_path} holds no saved class scores" in empty.stderr
    pose = run("--scores", scores, "--tasks", "pose_estimation_3d")
    assert pose.returncode == 2 and "leave pose_estimation_3d out of --tasks" in pose.stderr
    nothing = run("--tasks", "action_recognition_3d")
    assert nothing.returncode == 2 and "give a --model to evaluate, or --scores folders to fuse" in nothing.stderr


def test_a_run_without_text_encoder_says_so_in_table_results_and_card(trained_run):
    out, results = trained_run  # SMALL trains with --text_encoder none
    assert results["random_vocabulary"] is True and results["text_encoder"] is None
    table = [line for line in (out / "stdout.txt").read_text().splitlines() if line.startswith("| ")]
    assert table[0] == "| task | metric | UPS | baseline |"
    assert table[-1].startswith("| all tasks | vocabulary embeddings | RANDOM (--text_encoder none")
    card = (out / "final" / "README.md").read_text()
    assert "**Vocabulary embeddings: RANDOM (--text_encoder none" in card
    assert json.loads((out / "final" / "config.json").read_text())["text_encoder_name_or_path"] == "none"


def test_results_and_table_hold_the_routing_map_the_pipeline_reports(trained_run):
    """results.json's `routing` is, per task, what `pipeline(..., return_routing=True)` reports for that task with
    the saved checkpoint, and the printed table has a routing row per task."""
    from transformers import pipeline

    from modeling_ups import UPSForPoseSequenceModeling, UPSProcessor

    out, results = trained_run
    model = UPSForPoseSequenceModeling.from_pretrained(out / "final").eval()
    pipe = pipeline("pose-sequence-modeling", model=model, processor=UPSProcessor.from_pretrained(out / "final"))
    assert list(results["routing"]) == TASKS
    inputs = {"action_recognition_3d": ("action_recognition", (40, 25, 3), "ntu25"),
              "early_action_prediction_3d": ("early_action_prediction", (40, 25, 3), "ntu25"),
              "action_recognition_2d": ("action_recognition", (40, 18, 2), "openpose18"),
              "pose_estimation_3d": ("pose_estimation", (27, 17, 2), "h36m17")}
    table = (out / "stdout.txt").read_text()
    for task, (pipeline_task, shape, layout) in inputs.items():
        poses = np.random.default_rng(0).normal(size=shape).astype(np.float32) * 300
        answer = pipe(poses, task=pipeline_task, layout=layout, return_routing=True)
        route = answer[0]["routing"] if isinstance(answer, list) else answer["routing"]
        assert results["routing"][task]["blocks"] == route["blocks"], task
        np.testing.assert_allclose(results["routing"][task]["probabilities"], route["probabilities"], atol=1e-6)
        assert f"| {task} | encoder block per layer (routing) | {', '.join(map(str, route['blocks']))} | |" in table
    assert 0.0 <= results["routing_agreement"] <= 1.0


def test_checkpoint_folder_loads_with_auto_classes_and_predicts(trained_run):
    from transformers import AutoModel, AutoProcessor, pipeline

    out, _ = trained_run
    final = out / "final"
    config = json.loads((final / "config.json").read_text())
    assert "AutoModel" in config["auto_map"] and "pose-sequence-modeling" in config["custom_pipelines"]
    assert (final / "README.md").is_file() and not list(final.glob("*.bin"))
    model = AutoModel.from_pretrained(final).eval()
    processor = AutoProcessor.from_pretrained(final)
    poses = np.random.default_rng(0).normal(size=(40, 25, 3)).astype(np.float32) * 300
    inputs = processor(poses, task="action_recognition_3d", layout="ntu25", return_tensors="pt")
    ids = model.generate(**inputs)
    (label,) = processor.post_process(ids, task="action_recognition_3d")
    assert label["label"] in processor.tokenizer.label_names
    pipe = pipeline("pose-sequence-modeling", model=model, processor=processor)
    top = pipe(poses, task="action_recognition", layout="ntu25", top_k=3)
    assert len(top) == 3 and top[0]["label"] == label["label"]


def test_killed_runs_resume_to_the_uninterrupted_parameters(tmp_path):
    """SIGKILL the run at random moments (several times), resume each time, and compare with a clean run."""
    args = ["--max_steps", "12", "--checkpointing_steps", "2", "--skip_final_evaluation", "--learning_rate", "3e-3"]
    reference = tmp_path / "reference"
    _train(reference, *args)

    resumed = tmp_path / "resumed"
    rng = random.Random(1234)
    cmd = [sys.executable, TRAIN, "--output_dir", str(resumed), *SMALL, *args, "--resume_from_checkpoint", "latest"]
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        manager = CheckpointManager(resumed / "checkpoints")
        before = [s for s, _ in manager.checkpoints(warn=False)]
        deadline = time.time() + 240
        # Kill after at least one new checkpoint, at a random extra delay, so kills land in various places
        # (between steps, while a checkpoint is being written, during the final export).
        while proc.poll() is None and time.time() < deadline:
            if [s for s, _ in manager.checkpoints(warn=False)] != before:
                time.sleep(rng.uniform(0.0, 1.5))
                break
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        elif proc.returncode == 0 and (resumed / "final" / "model.safetensors").is_file():
            break
    else:
        pytest.fail("the resumed run never finished")
    if not (resumed / "final" / "model.safetensors").is_file():
        subprocess.run(cmd, env=_env(), check=True, capture_output=True, cwd=REPO, timeout=300)
    assert kills >= 2, "the run finished before it could be killed twice; make it longer"
    expected, got = _weights(reference), _weights(resumed)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)


def test_ema_saves_the_moving_average_of_the_weights_and_resumes_it(tmp_path):
    args = ["--max_steps", "4", "--skip_final_evaluation", "--learning_rate", "3e-3", "--checkpoints_total_limit", "5"]
    plain = tmp_path / "plain"
    _train(plain, *args, "--checkpointing_steps", "1")
    steps = [load_file(str(plain / "checkpoints" / f"step_{k}" / "model.safetensors")) for k in (1, 2, 3)]
    steps.append(_weights(plain))
    averaged = tmp_path / "averaged"
    _train(averaged, *args, "--checkpointing_steps", "2", "--ema_decay", "0.75")
    got = _weights(averaged)
    # The average does not change the training (the raw weights of step 2 are the plain run's) ...
    raw = load_file(str(averaged / "checkpoints" / "step_2" / "model.safetensors"))
    for name in raw:
        torch.testing.assert_close(raw[name], steps[1][name], rtol=0, atol=0, msg=name)
    # ... and the saved model is its exponential moving average, starting from the first step's weights.
    for name in got:
        expected = steps[0][name].double()
        for weights in steps[1:]:
            expected = 0.75 * expected + 0.25 * weights[name].double()
        torch.testing.assert_close(got[name].double(), expected, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(got[name], steps[-1][name]) for name in got)
    # A run resumed from step 2 continues the average it left there.
    _train(averaged, *args, "--checkpointing_steps", "2", "--ema_decay", "0.75", "--resume_from_checkpoint", "latest")
    resumed = _weights(averaged)
    for name in got:
        torch.testing.assert_close(resumed[name], got[name], rtol=0, atol=0, msg=name)


def test_routing_separation_pushes_the_tasks_routes_apart_and_is_left_out_of_the_logged_loss(tmp_path):
    """`--routing_separation_weight`: the same run with and without the penalty on the tasks' routing agreement;
    with it the trained routes of the two tasks agree less, while the first step's logged loss (before any update)
    is the same, because the log holds the task loss alone."""
    from modeling_ups import UPSForPoseSequenceModeling

    tasks = ["action_recognition_3d", "early_action_prediction_3d"]
    args = ["--tasks", ",".join(tasks), "--max_steps", "6", "--learning_rate", "3e-2", "--skip_final_evaluation"]
    agreement, first_loss = {}, {}
    for weight in (0.0, 5.0):
        out = tmp_path / f"weight_{weight}"
        _train(out, *args, "--routing_separation_weight", str(weight))
        model = UPSForPoseSequenceModeling.from_pretrained(out / "final")
        task_ids = torch.tensor([model.config.tasks.index(t) for t in tasks])
        agreement[weight] = model.get_encoder().routing.agreement(task_ids).item()
        # results.json reports the same agreement (train.py's routing map), read off the trained weights
        assert json.loads((out / "results.json").read_text())["routing_agreement"] == pytest.approx(agreement[weight])
        first_loss[weight] = [row["loss"] for row in _log(out) if row["step"] == 1]
    assert agreement[5.0] < agreement[0.0] - 0.05, agreement
    assert first_loss[5.0] == first_loss[0.0], first_loss
    train = _train_script()
    with pytest.raises(ValueError, match="--routing_separation_weight must be >= 0"):
        train.parse_args(["--routing_separation_weight", "-1"])
    with pytest.raises(ValueError, match="needs two or more tasks"):
        train.parse_args(["--routing_separation_weight", "1", "--tasks", "action_recognition_3d"])


def test_bf16_mixed_precision_trains_every_task_and_saves_float32_weights(tmp_path):
    """`--mixed_precision bf16` on a CPU: Accelerate's autocast runs the forward in bfloat16, the weights, the
    optimizer and the saved checkpoint stay float32."""
    results, _ = _train(tmp_path, "--max_steps", "4", "--mixed_precision", "bf16", "--learning_rate", "3e-3",
                        "--max_eval_samples", "8", "--per_device_eval_batch_size", "8", "--tasks", ",".join(TASKS))
    assert set(results["tasks_results"]) == set(TASKS)
    losses = [entry for entry in _log(tmp_path) if "loss" in entry]
    assert len(losses) == 4 and all(math.isfinite(entry["loss"]) for entry in losses)
    assert {w.dtype for w in _weights(tmp_path).values() if w.is_floating_point()} == {torch.float32}


def test_interrupted_checkpoint_is_skipped_with_a_warning(tmp_path, caplog):
    manager = CheckpointManager(tmp_path, keep_last=5)
    manager.save(2, lambda d: (d / "model.safetensors").write_bytes(b"ok"))
    partial = manager.begin(4)  # a write that never committed
    (partial / "model.safetensors").write_bytes(b"half")
    damaged = tmp_path / "step_6"  # renamed by hand, no marker
    damaged.mkdir()
    with caplog.at_level("WARNING"):
        assert manager.latest() == tmp_path / "step_2"
    assert "step_4.partial" in caplog.text and "step_6" in caplog.text
    assert manager.resolve(str(damaged)) == tmp_path / "step_2"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_cpu_data_parallel(tmp_path):
    """ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2: real DDP over gloo."""
    common = ["--max_steps", "4", "--skip_final_evaluation", "--learning_rate", "3e-3"]
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(_free_port()))
    # gloo picks a network interface by the host name; pin it to loopback so the two ranks always find each other
    # (without this the rendezvous hung once in a sandbox whose other interfaces refuse local connections).
    env = dict(_env(), ACCELERATE_USE_CPU="1", GLOO_SOCKET_IFNAME="lo")
    cmd = [*launcher, TRAIN, "--output_dir", str(tmp_path / "ddp"), *SMALL, *common,
           "--per_device_train_batch_size", "4"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-5000:]
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert ddp["num_processes"] == 2 and "MULTI_CPU" in ddp["distributed_type"]
    assert len(ddp["parameter_checksums"]) == 2
    assert ddp["parameter_checksums"][0] == ddp["parameter_checksums"][1]
    # The cores are shared between the two processes (accelerate launch alone would give each 1 thread).
    assert ddp["torch_threads_per_process"] == max(1, len(os.sched_getaffinity(0)) // 2)

    single, _ = _train(tmp_path / "single", *common, "--per_device_train_batch_size", "8")
    assert single["num_processes"] == 1
    assert single["torch_threads_per_process"] == 1  # plain python keeps the OMP_NUM_THREADS=1 of `_env`
    # Same global batch (2 x 4 vs 1 x 8), same samples, same initial weights: the first step's loss matches up
    # to what the two setups legitimately do differently (each process draws its own Gumbel and dropout noise).
    first_ddp, first_single = _log(tmp_path / "ddp")[0], _log(tmp_path / "single")[0]
    assert first_ddp["task"] == first_single["task"]
    assert first_ddp["loss"] == pytest.approx(first_single["loss"], rel=0.05)


def test_task_rotation_counts_batches_per_task_with_repeats():
    from modeling_ups.training import TaskRotation

    rotation = TaskRotation(["pose", "ar", "pose", "ap"])
    steps = [rotation.task_at(s) for s in range(11)]
    for step in range(12):
        for task in ("pose", "ar", "ap"):
            assert rotation.batches_before(task, step) == steps[:step].count(task)


def test_batch_sampler_resumes_mid_stream_and_splits_ranks():
    from itertools import islice

    from modeling_ups.training import ResumableBatchSampler

    full = list(islice(iter(ResumableBatchSampler(10, 4, seed=7)), 6))
    resumed = list(islice(iter(ResumableBatchSampler(10, 4, seed=7, start_batch=3)), 3))
    assert resumed == full[3:]
    ranks = [list(islice(iter(ResumableBatchSampler(10, 4, seed=7, rank=r, world_size=2)), 6)) for r in (0, 1)]
    for k in range(6):
        assert ranks[0][k] + ranks[1][k] == full[k]  # same (stream position, index) keys, split between ranks
    epoch = sorted(i for batch in full[:2] for _, i in batch) + sorted(i for _, i in full[2][:2])
    assert sorted(epoch) == list(range(10))  # 10 samples per epoch, each once


def test_view_rotation_keeps_the_skeleton_and_is_keyed_by_stream_position():
    from datasets_scripts.synthetic import build_synthetic_datasets
    from modeling_ups import UPSProcessor
    from modeling_ups.training.data import TaskCollator, random_view_rotation

    rotation = random_view_rotation(np.random.default_rng(0), 30.0)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-6)
    # Yaw and pitch only, each within 30 degrees: the vertical axis tilts by at most 30 degrees.
    assert np.degrees(np.arccos(rotation[1, 1])) <= 30.0 + 1e-4

    processor = UPSProcessor.from_pretrained(REPO / "processors" / "synthetic")
    data = build_synthetic_datasets(num_train=4, num_test=4, seed=0)
    rows = [data["action_recognition_3d"]["train"].with_format("numpy")[i] for i in range(4)]
    rows[0]["poses"][:5, 0, 3] = 0.0  # a missing joint
    keys = [(i,) for i in range(4)]

    def poses(task, train, degrees, keys=keys):
        collator = TaskCollator(processor, task, data[task]["train"], train=train, seed=0, rotation_degrees=degrees)
        return collator.inputs_and_targets(rows, keys)[0]

    plain, rotated = poses("action_recognition_3d", False, 45.0), poses("action_recognition_3d", True, 45.0)
    for before, after in zip(plain, rotated):
        assert not np.allclose(before, after)
        bones = lambda x: np.linalg.norm(x[..., :, None, :] - x[..., None, :, :], axis=-1)  # noqa: E731
        np.testing.assert_allclose(bones(after), bones(before), rtol=1e-4, atol=1e-2)
    assert not rotated[0][0, :5, 3].any()  # the missing joint stays missing
    again = poses("action_recognition_3d", True, 45.0)
    shifted = poses("action_recognition_3d", True, 45.0, keys=[(i + 1,) for i in range(4)])
    assert all(np.array_equal(a, b) for a, b in zip(rotated, again))
    assert not np.allclose(rotated[0], shifted[0])
    # Off in evaluation and for 2D inputs; 0 degrees is the identity.
    for task, train, degrees in (("action_recognition_3d", True, 0.0), ("action_recognition_2d", True, 45.0)):
        rows_2d = poses(task, train, degrees)
        reference = poses(task, False, 0.0)
        assert all(np.array_equal(a, b) for a, b in zip(rows_2d, reference))
    with pytest.raises(ValueError, match="rotation_degrees"):
        TaskCollator(processor, "action_recognition_3d", data["action_recognition_3d"]["train"], train=True,
                     rotation_degrees=-5)


def _train_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ups_examples_train_options", TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_option_has_one_default_and_the_command_line_beats_the_recipe(tmp_path):
    train = _train_script()
    parsed = vars(train.build_parser().parse_args([]))
    assert set(parsed) == set(train.DEFAULTS) and all(v is None for v in parsed.values())  # no argparse defaults
    demo = train.parse_args([])
    assert demo.config == "demo" and demo.learning_rate == 0.003 and demo.max_steps == 800  # the recipe
    assert demo.per_device_train_batch_size == 32 and demo.gradient_accumulation_steps == 1  # recipe, DEFAULTS
    assert demo.tasks[:2] == ["pose_estimation_3d", "action_recognition_2d"] and len(demo.tasks) == 5
    assert demo.skip_final_evaluation is False and demo.dataset == {}
    given = train.parse_args(["--config", "paper", "--learning_rate", "0.5", "--skip_final_evaluation", "--seed", "0",
                              "--dataset", "pose_estimation_3d=data/h36m"])
    assert given.learning_rate == 0.5 and given.skip_final_evaluation is True and given.seed == 0
    assert given.model_config == "ups-base" and given.tasks == train.PAPER_TASK_ORDER  # recipe, DEFAULTS
    assert given.dataset == {"pose_estimation_3d": "data/h36m"}
    no_length = tmp_path / "no_length.json"
    no_length.write_text(json.dumps({"learning_rate": 0.1}))
    with pytest.raises(ValueError, match="--max_steps or --num_train_epochs"):
        train.parse_args(["--config", str(no_length)])
    assert train.parse_args(["--config", str(no_length), "--num_train_epochs", "2"]).max_steps is None
    no_length.write_text(json.dumps({"max_steps": 3, "no_such_option": 1}))
    with pytest.raises(ValueError, match="unknown option 'no_such_option'"):
        train.parse_args(["--config", str(no_length)])


@pytest.mark.parametrize("recipe", sorted(p.stem for p in (REPO / "configuration" / "recipes").glob("*.json")))
def test_every_shipped_recipe_resolves_to_valid_options(recipe):
    """A recipe names only known options, with values the option checks accept (docs/results.md runs them)."""
    train = _train_script()
    args = train.parse_args(["--config", recipe])
    assert args.config == recipe and (args.max_steps or args.num_train_epochs)
    for key, value in train.load_recipe(recipe).items():
        if not key.startswith("_") and key not in ("dataset", "tasks"):
            assert getattr(args, key) == value, key


@pytest.mark.parametrize("layout_name", sorted(__import__("modeling_ups.skeletons", fromlist=["LAYOUTS"]).LAYOUTS))
def test_mirror_negates_x_and_swaps_left_and_right_joints(layout_name):
    from modeling_ups.skeletons import get_layout

    layout = get_layout(layout_name)
    poses = np.random.default_rng(0).normal(size=(2, 5, layout.num_joints, 3)).astype(np.float32)
    poses[0, 1, layout.left[0]] = 0.0  # a missing joint
    mirrored = layout.mirror(poses)
    assert mirrored.shape == poses.shape and layout.left and len(layout.left) == len(layout.right)
    np.testing.assert_array_equal(mirrored[..., list(layout.left), 0], -poses[..., list(layout.right), 0])
    np.testing.assert_array_equal(mirrored[..., list(layout.right), 1:], poses[..., list(layout.left), 1:])
    centre = [j for j in range(layout.num_joints) if j not in layout.left + layout.right]
    np.testing.assert_array_equal(mirrored[..., centre, 1:], poses[..., centre, 1:])
    assert not mirrored[0, 1, layout.right[0]].any()  # the missing joint moved with its side and stays missing
    np.testing.assert_array_equal(layout.mirror(mirrored), poses)


def _collate_synthetic(task, train, num_samples=8, **augmentation):
    """The collator's inputs_and_targets for the first `num_samples` synthetic training rows of `task`, and the
    rows: the samples the augmentation tests compare with and without an augmentation."""
    from datasets_scripts.synthetic import build_synthetic_datasets
    from modeling_ups import UPSProcessor
    from modeling_ups.training.data import TaskCollator

    processor = UPSProcessor.from_pretrained(REPO / "processors" / "synthetic")
    split = build_synthetic_datasets(num_train=num_samples, num_test=2, seed=0)[task]["train"]
    rows = [split.with_format("numpy")[i] for i in range(num_samples)]
    collator = TaskCollator(processor, task, split, train=train, seed=0, **augmentation)
    return collator.inputs_and_targets(rows, [(i,) for i in range(num_samples)]), rows


def _box_normalising_processor():
    """The synthetic processor with `box_normalize` on: the augmentation tests ask what the box leaves of a clip."""
    from modeling_ups import UPSProcessor

    processor = UPSProcessor.from_pretrained(REPO / "processors" / "synthetic")
    processor.feature_extractor.box_normalize = True
    return processor


def test_flip_augmentation_mirrors_input_and_pose_target_alike_and_only_while_training():
    from modeling_ups.skeletons import get_layout

    def collate(task, train, probability):
        return _collate_synthetic(task, train, flip_probability=probability)

    for task in ("pose_estimation_3d", "action_recognition_2d", "action_recognition_3d"):
        (plain, labels, plain_targets, extra), rows = collate(task, True, 0.0)
        (flipped, flipped_labels, targets, _), _ = collate(task, True, 1.0)
        assert flipped_labels == labels  # a mirrored action is the same action
        for i, row in enumerate(rows):
            np.testing.assert_array_equal(flipped[i], get_layout(extra["layout"][i]).mirror(plain[i]))
            if task == "pose_estimation_3d":
                np.testing.assert_array_equal(targets[i], get_layout(row["layout"]).mirror(plain_targets[i]))
        if task == "action_recognition_2d":
            assert plain[0].shape[-1] == 3  # confidences travelled with their joints
        evaluation, _ = collate(task, False, 1.0)
        assert all(np.array_equal(a, b) for a, b in zip(evaluation[0], plain))
    (half, *_), _ = collate("action_recognition_3d", True, 0.5)
    (again, *_), _ = collate("action_recognition_3d", True, 0.5)
    changed = [not np.array_equal(a, b) for a, b in zip(half, plain)]
    assert 0 < sum(changed) < len(changed)  # each sample decides for itself, from its stream position
    assert all(np.array_equal(a, b) for a, b in zip(half, again))
    with pytest.raises(ValueError, match="flip_probability"):
        _collate_synthetic("pose_estimation_3d", True, num_samples=1, flip_probability=1.5)


def test_config_overrides_change_the_preset_and_are_checked_like_the_config():
    from types import SimpleNamespace

    from modeling_ups import UPSProcessor

    train = _train_script()
    processor = UPSProcessor.from_pretrained(REPO / "processors" / "synthetic")
    quiet = SimpleNamespace(print=lambda *args, **kwargs: None)

    def build(overrides):
        args = train.parse_args(["--text_encoder", "none", "--config_overrides", overrides])
        return train.build_model(args, processor, quiet)[0]

    model = build("routing_train_all_blocks=false,decoder_token_dropout=0.25")
    assert model.config.layout_names == processor.feature_extractor.layouts  # all six
    assert model.config.routing_train_all_blocks is False and model.config.decoder_token_dropout == 0.25
    assert not model.model.encoder.routing.train_all_blocks
    assert model.config.d_model == train.UPSConfig.from_pretrained(train.resolve_model_config("ups-tiny")).d_model
    with pytest.raises(ValueError, match="decoder_token_dropout must be in"):
        build("decoder_token_dropout=2")
    with pytest.raises(ValueError, match="no_such_field"):
        build("no_such_field=1")


def test_a_recipe_derives_from_its_base_and_model_fields_add_up_through_every_layer(tmp_path):
    """A stream's recipe names its base and only what differs; model fields (`config_overrides`) add up from the base
    through the recipe to the command line, a field named again taking the later value: `--config msr_action3d
    --config_overrides dropout=0.2` keeps the recipe's `motion_input=true`, and a bone stream keeps its base's
    routing."""
    from types import SimpleNamespace

    from modeling_ups import UPSProcessor

    train = _train_script()
    base, stream = tmp_path / "base.json", tmp_path / "stream.json"
    base.write_text(json.dumps({"_comment": "x", "max_steps": 7, "learning_rate": 0.01,
                                "config_overrides": "routing_train_all_blocks=false,dropout=0.2"}))
    stream.write_text(json.dumps({"base": base.name, "learning_rate": 0.001,  # read next to the recipe
                                  "config_overrides": "joint_input=false,bone_input=true"}))
    assert train.load_recipe(str(stream)) == {
        "max_steps": 7, "learning_rate": 0.001,
        "config_overrides": "routing_train_all_blocks=false,dropout=0.2,joint_input=false,bone_input=true"}
    args = train.parse_args(["--config", str(stream), "--text_encoder", "none",
                             "--config_overrides", "dropout=0.3,root_relative_input=false"])
    processor = UPSProcessor.from_pretrained(REPO / "processors" / "synthetic")
    config = train.build_model(args, processor, SimpleNamespace(print=lambda *a, **k: None))[0].config
    assert (config.routing_train_all_blocks, config.dropout, config.joint_input, config.root_relative_input,
            config.bone_input) == (False, 0.3, False, False, True)
    assert (args.max_steps, args.learning_rate) == (7, 0.001)
    assert train.parse_args(["--config_overrides", "dropout=0.3"]).config_overrides == "dropout=0.3"  # demo has none
    assert train.parse_args(["--config", str(stream), "--config_overrides", ""]).config_overrides == (
        "routing_train_all_blocks=false,dropout=0.2,joint_input=false,bone_input=true")  # adds nothing
    assert train.parse_args(["--config", "msr_action3d", "--config_overrides", "dropout=0.2"]).config_overrides == (
        "motion_input=true,dropout=0.2")  # configuration/recipes/README.md's example
    # The shipped stream recipes are the joint recipe but for their input and output folder.
    joint = train.load_recipe("nw_ucla")
    for stream_name, stream_input in (("nw_ucla_bone", "bone_input=true"), ("nw_ucla_motion", "motion_input=true")):
        recipe = train.load_recipe(stream_name)
        assert recipe.pop("config_overrides").endswith(stream_input) and recipe.pop("output_dir") != joint["output_dir"]
        assert recipe == {key: value for key, value in joint.items() if key not in ("config_overrides", "output_dir")}
    base.write_text(json.dumps({"base": str(stream)}))
    with pytest.raises(ValueError, match="derives from itself"):
        train.load_recipe(str(stream))


def test_frame_sampling_and_extra_test_clips_take_the_frames_they_name():
    from datasets_scripts.synthetic import build_synthetic_datasets
    from modeling_ups import UPSProcessor
    from modeling_ups.feature_extraction_ups import uniform_frame_indices
    from modeling_ups.training.data import TaskCollator

    processor = UPSProcessor.from_pretrained(REPO / "processors" / "synthetic")
    processor.feature_extractor.num_frames = 8
    datasets = build_synthetic_datasets(num_train=6, num_test=2, seed=0)

    def clips(task, train, sampling, test_clip=0):
        split = datasets[task]["train"]
        rows = [split.with_format("numpy")[i] for i in range(6)]
        collator = TaskCollator(processor, task, split, train=train, seed=0, frame_sampling=sampling,
                                test_clip=test_clip)
        return collator.inputs_and_targets(rows, [(i,) for i in range(6)])[0], rows

    def source_frames(clip, row):
        """The frame of the source clip each of `clip`'s 8 frames is (the synthetic clips repeat no frame)."""
        source = np.swapaxes(row["poses"], 0, 1)[..., :2]  # (M, T, J, 2): the channels every task keeps
        assert clip.shape[1] == 8
        return [next(t for t in range(source.shape[1]) if np.array_equal(source[:, t], clip[:, k, :, :2]))
                for k in range(8)]

    def in_own_segments(found, length):
        """Whether each of the 8 frames found lies in its own segment of a clip of `length` frames."""
        lower, upper = uniform_frame_indices(length, 8, 0.0), uniform_frame_indices(length, 8, 0.999999)
        return all(lo <= f <= up for f, lo, up in zip(found, lower, upper))

    def frames_drawn(sampled, rows):
        drawn = []
        for clip, row in zip(sampled, rows):
            found = source_frames(clip, row)
            # Each output frame is a frame of its own segment of the clip, in order.
            assert in_own_segments(found, len(row["poses"])), found
            drawn.append(tuple(found))
        assert any(d != tuple(uniform_frame_indices(len(r["poses"]), 8)) for d, r in zip(drawn, rows))
        assert len(set(drawn)) > 1
        return drawn

    for task in ("action_recognition_3d", "action_recognition_2d"):
        frames_drawn(*clips(task, True, "segment"))
        # Evaluation's extra test clips draw the same way, each clip its own frames.
        first, second = frames_drawn(*clips(task, False, "centre", 1)), frames_drawn(*clips(task, False, "centre", 2))
        assert first != second
        # Sorted draws: frames of the whole clip, in order, not bound to one frame per segment.
        sampled, rows = clips(task, True, "sorted_draws")
        drawn = [source_frames(clip, row) for clip, row in zip(sampled, rows)]
        assert all(found == sorted(found) for found in drawn)
        assert not all(in_own_segments(found, len(row["poses"])) for found, row in zip(drawn, rows)), drawn
        # Training with the centres, and evaluation's first clip, hand the whole clip to the processor.
        for train_ in (True, False):
            whole, rows = clips(task, train_, "centre")
            assert all(np.array_equal(clip[..., :2], np.swapaxes(row["poses"], 0, 1)[..., :2])
                       for clip, row in zip(whole, rows))
    # Pose estimation's windows are never resampled.
    pose_clips, pose_rows = clips("pose_estimation_3d", True, "sorted_draws")
    assert [c.shape[1] for c in pose_clips] == [len(r["poses_2d"]) for r in pose_rows]
    with pytest.raises(ValueError, match="frame_sampling must be one of"):
        TaskCollator(None, "action_recognition_3d", None, train=True, frame_sampling="random")


def test_layouts_option_builds_a_model_padded_to_the_kept_layouts_only():
    from types import SimpleNamespace

    train = _train_script()
    args = train.parse_args(["--text_encoder", "none", "--processor", "humaneva", "--layouts", "humaneva15"])
    processor = train.load_processor(args)
    model = train.build_model(args, processor, SimpleNamespace(print=lambda *a, **k: None))[0]
    assert model.config.layout_names == ["humaneva15"] and model.config.max_joints == 15
    batch = processor(np.random.default_rng(0).normal(size=(27, 15, 2)).astype(np.float32), task="pose_estimation",
                      return_tensors="pt")
    assert model.generate(**batch, max_new_tokens=3 * 15 + 1).shape[1] == 3 * 15 + 2  # start, 45 bins, end


def test_processor_options_are_set_on_the_saved_processor(tmp_path):
    train = _train_script()
    processor = train.load_processor(train.parse_args(["--processor", "ntu60", "--num_frames", "24", "--align_view",
                                                       "--box_normalize", "--pose_decoding", "expectation"]))
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["pose_decoding"] == "expectation"
    saved = saved["feature_extractor"]
    assert saved["num_frames"] == 24 and saved["align_view"] is True and saved["box_normalize"] is True
    plain = train.load_processor(train.parse_args(["--processor", "ntu60"]))
    assert plain.feature_extractor.align_view is False and plain.feature_extractor.box_normalize is False
    assert plain.pose_decoding == "bins"


def test_axis_scaling_stretches_each_axis_of_3d_clips_only_while_training():
    def collate(task, train, scale):
        return _collate_synthetic(task, train, num_samples=6, scale_range=scale)[0][0]

    plain, scaled = collate("action_recognition_3d", True, 0.0), collate("action_recognition_3d", True, 0.2)
    factors = []
    for before, after in zip(plain, scaled):
        moving = np.abs(before) > 1.0  # coordinates away from zero, where the ratio is well defined
        ratio = after[..., :3][moving] / before[..., :3][moving]
        axes = np.broadcast_to(np.arange(3), before.shape)[moving]
        per_axis = [np.unique(np.round(ratio[axes == a], 4)) for a in range(3)]
        assert all(len(values) == 1 and 0.8 <= values[0] <= 1.2 for values in per_axis)  # one factor per axis
        factors.append([values[0] for values in per_axis])
    assert len({tuple(f) for f in factors}) == len(factors)  # each clip draws its own factors
    assert all(np.array_equal(a, b) for a, b in zip(collate("action_recognition_3d", False, 0.2), plain))
    assert all(np.array_equal(a, b) for a, b in zip(collate("action_recognition_2d", True, 0.2),
                                                    collate("action_recognition_2d", True, 0.0)))
    with pytest.raises(ValueError, match="scale_range"):
        _collate_synthetic("action_recognition_3d", True, num_samples=1, scale_range=1.0)
    # A processor that box-normalises clips undoes any per-axis stretch (test_feature_extraction), so the pair is
    # refused rather than trained as if it scaled.
    from modeling_ups.training.data import TaskCollator

    boxed = _box_normalising_processor()
    with pytest.raises(ValueError, match="no effect with the processor's box_normalize"):
        TaskCollator(boxed, "action_recognition_3d", None, train=True, scale_range=0.2)
    TaskCollator(boxed, "action_recognition_3d", None, train=True, rotation_degrees=60.0)


def test_a_test_view_turns_every_3d_evaluation_clip_by_its_fixed_yaw_and_pitch():
    """`test_view` is the evaluation's fixed counterpart of the training rotation: every 3D test clip goes through
    the same `view_rotation`, whatever its key; 2D clips and the default (0, 0) stay as recorded."""
    from modeling_ups.training.data import random_view_rotation, view_rotation

    # The training rotation is the fixed one at the angles its stream draws (the stream is unchanged).
    yaw, pitch = np.random.default_rng(7).uniform(-30.0, 30.0, size=2)
    np.testing.assert_array_equal(random_view_rotation(np.random.default_rng(7), 30.0), view_rotation(yaw, pitch))
    quarter = view_rotation(90.0, 0.0)  # a quarter turn about the vertical axis: x -> -z, z -> x, y kept
    np.testing.assert_allclose(quarter @ np.array([1.0, 2.0, 3.0]), [3.0, 2.0, -1.0], atol=1e-6)

    (plain, *_), _ = _collate_synthetic("action_recognition_3d", train=False)
    (turned, *_), _ = _collate_synthetic("action_recognition_3d", train=False, test_view=(20.0, -10.0))
    rotation = view_rotation(20.0, -10.0)
    for before, after in zip(plain, turned):
        np.testing.assert_allclose(after[..., :3], before[..., :3] @ rotation.T, rtol=1e-5, atol=1e-3)
    (unturned, *_), _ = _collate_synthetic("action_recognition_3d", train=False, test_view=(0.0, 0.0))
    assert all(np.array_equal(a, b) for a, b in zip(plain, unturned))
    (flat, *_), _ = _collate_synthetic("action_recognition_2d", train=False)
    (flat_turned, *_), _ = _collate_synthetic("action_recognition_2d", train=False, test_view=(20.0, -10.0))
    assert all(np.array_equal(a, b) for a, b in zip(flat, flat_turned))
    with pytest.raises(ValueError, match="training clips draw their own turns"):
        _collate_synthetic("action_recognition_3d", train=True, test_view=(20.0, 0.0))


def test_shear_maps_each_3d_training_clip_by_its_own_unit_diagonal_shear_that_the_box_keeps():
    from modeling_ups.training.data import random_shear

    shear = random_shear(np.random.default_rng(0), 0.3)
    np.testing.assert_array_equal(np.diag(shear), np.ones(3))
    off_diagonal = shear[~np.eye(3, dtype=bool)]
    assert np.all(np.abs(off_diagonal) <= 0.3) and np.all(off_diagonal != 0)

    def collate(task, train, **augmentation):
        return _collate_synthetic(task, train, num_samples=6, **augmentation)[0][0]

    plain = collate("action_recognition_3d", True, rotation_degrees=30.0)
    sheared = collate("action_recognition_3d", True, rotation_degrees=30.0, shear_range=0.3)
    maps = []
    for before, after in zip(plain, sheared):
        # The sheared clip is the rotated clip through one linear map: recover it by least squares.
        points_before, points_after = before[..., :3].reshape(-1, 3), after[..., :3].reshape(-1, 3)
        linear_map = np.linalg.lstsq(points_before, points_after, rcond=None)[0].T
        np.testing.assert_allclose(points_before @ linear_map.T, points_after, atol=1e-2)
        np.testing.assert_allclose(np.diag(linear_map), np.ones(3), atol=1e-4)
        assert np.all(np.abs(linear_map[~np.eye(3, dtype=bool)]) <= 0.3 + 1e-4)
        maps.append(linear_map)
    assert len({tuple(np.round(m, 3).ravel()) for m in maps}) == len(maps)  # each clip draws its own shear
    assert all(np.array_equal(a, b) for a, b in zip(collate("action_recognition_3d", False, shear_range=0.3),
                                                    collate("action_recognition_3d", False)))
    assert all(np.array_equal(a, b) for a, b in zip(collate("action_recognition_2d", True, shear_range=0.3),
                                                    collate("action_recognition_2d", True)))
    with pytest.raises(ValueError, match="shear_range"):
        collate("action_recognition_3d", True, shear_range=1.0)
    # Unlike a per-axis stretch, a shear mixes the axes, so the box normalisation does not undo it.
    boxed = _box_normalising_processor().feature_extractor
    model_input = lambda clip: boxed(clip, task="action_recognition_3d")["pose_values"]  # noqa: E731
    assert not torch.allclose(model_input(sheared[0]), model_input(plain[0]), atol=1e-2)


def test_joint_noise_moves_present_joints_of_3d_clips_only_while_training():
    from modeling_ups.training.data import TaskCollator

    def collate(task, train, **noise):
        return _collate_synthetic(task, train, num_samples=6, **noise)[0][0]

    plain = collate("action_recognition_3d", True)
    offset, jitter = collate("action_recognition_3d", True, joint_offset_mm=30.0), \
        collate("action_recognition_3d", True, joint_jitter_mm=30.0)
    offsets = []
    for before, moved, shaken in zip(plain, offset, jitter):
        assert moved.shape == shaken.shape == before.shape
        np.testing.assert_array_equal(moved[..., 3:], before[..., 3:])  # channels past x, y, z are kept
        present = np.any(before[..., :3] != 0, axis=-1)
        step = moved[..., :3] - before[..., :3]
        # Each joint moves by its own offset, the same in every frame, of about the asked size.
        np.testing.assert_allclose(step[present], np.broadcast_to(step[:, :1], step.shape)[present], atol=1e-3)
        assert 15.0 < step[present].std() < 45.0
        assert not np.any(step[~present])
        offsets.append(step[0, 0])
        # Jitter is drawn anew for every frame.
        shake = shaken[0, ..., :3] - before[0, ..., :3]  # (T, J, 3), the first person
        steady = present[0].all(axis=0)  # joints present in every frame
        assert np.abs(np.diff(shake[:, steady], axis=0)).mean() > 10.0
    assert len({tuple(np.round(o.ravel(), 3)) for o in offsets}) == len(offsets)  # each clip draws its own
    # Evaluation and 2D clips are never moved; neither is a clip without the options.
    assert all(np.array_equal(a, b) for a, b in zip(collate("action_recognition_3d", False, joint_offset_mm=30.0),
                                                    collate("action_recognition_3d", False)))
    assert all(np.array_equal(a, b) for a, b in zip(collate("action_recognition_2d", True, joint_jitter_mm=30.0),
                                                    collate("action_recognition_2d", True)))
    # Absent persons and missing joints (zeros) stay zero.
    collator = TaskCollator(None, "early_action_prediction_3d", None, train=True, joint_offset_mm=30.0,
                            joint_jitter_mm=30.0)
    clip = np.ones((2, 4, 5, 3), dtype=np.float32)
    clip[1] = 0.0
    clip[0, :, 2] = 0.0
    noisy = collator._joint_noise((0,), clip)
    assert noisy.dtype == clip.dtype and not np.any(noisy[1]) and not np.any(noisy[0, :, 2])
    assert np.all(noisy[0, :, [0, 1, 3, 4]] != 1.0)
    for name in ("joint_offset_mm", "joint_jitter_mm"):
        with pytest.raises(ValueError, match=name):
            TaskCollator(None, "action_recognition_3d", None, train=True, **{name: -1.0})


def test_every_training_augmentation_option_reaches_the_collator(monkeypatch):
    """`examples/train.py`'s augmentation flags are handed to each task's training collator as given."""
    from types import SimpleNamespace

    from datasets_scripts.synthetic import build_synthetic_datasets
    from modeling_ups.training.data import TaskCollator

    train = _train_script()
    given = {"rotation_degrees": 10.0, "scale_range": 0.2, "shear_range": 0.3, "joint_offset_mm": 30.0,
             "joint_jitter_mm": 15.0, "flip_probability": 0.5, "frame_sampling": "sorted_draws"}
    flags = [f"--{name}={value}" for name, value in given.items()]
    args = train.parse_args(["--text_encoder", "none", "--tasks", "action_recognition_3d", *flags])
    seen = {}

    class RecordingCollator(TaskCollator):
        def __init__(self, *args, **kwargs):
            seen.update(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(train, "TaskCollator", RecordingCollator)
    run = SimpleNamespace(args=args, accelerator=SimpleNamespace(num_processes=1, process_index=0),
                          processor=train.load_processor(args),
                          datasets=build_synthetic_datasets(num_train=8, num_test=2, seed=0))
    train.task_batch_iterators(run, SimpleNamespace(batches_before=lambda task, step: 0), 0)
    assert {name: seen.get(name) for name in given} == given
    # The option's earlier name stays a spelling of one of its values.
    assert train.parse_args(["--random_frame_sampling"]).frame_sampling == "segment"


def test_test_view_flags_turn_the_final_evaluation_of_3d_tasks_only(tmp_path):
    """`--test_view_yaws` / `--test_view_pitches` reach the final evaluation as their grid: the 3D task's figures
    are recorded as those of turned clips, the 2D task's are not; a run with no 3D task is refused before training."""
    results, _ = _train(tmp_path, "--tasks", "action_recognition_3d,action_recognition_2d", "--max_steps", "2",
                        "--max_eval_samples", "8", "--per_device_eval_batch_size", "8",
                        "--test_view_yaws", "-10", "10", "--test_view_pitches", "5")
    tasks = results["tasks_results"]
    assert tasks["action_recognition_3d"]["test_views"] == [[-10.0, 5.0], [10.0, 5.0]]
    assert "test_views" not in tasks["action_recognition_2d"]
    with pytest.raises(ValueError, match="none of the tasks"):
        _train_script().parse_args(["--tasks", "action_recognition_2d", "--test_view_yaws", "15"])


def test_several_pose_target_frames_train_save_and_lift_a_video(tmp_path):
    """`--pose_target_frames 3`: the model, its config and the saved processor predict 3 frames per window (scored
    with `--pose_decoding expectation`); the checkpoint lifts every frame of a video through the pipeline, a window
    per 3 frames."""
    from transformers import AutoModel, pipeline

    from modeling_ups import UPSProcessor

    results, _ = _train(tmp_path, "--tasks", "pose_estimation_3d", "--max_steps", "4", "--pose_window", "9",
                        "--pose_target_frames", "3", "--pose_eval_stride", "3", "--max_eval_samples", "12",
                        "--pose_decoding", "expectation")
    assert results["tasks_results"]["pose_estimation_3d"]["num_samples"] > 12  # 12 windows, up to 3 frames each
    assert results["tasks_results"]["pose_estimation_3d"]["pose_decoding"] == "expectation"
    final = tmp_path / "final"
    model = AutoModel.from_pretrained(final, trust_remote_code=True)
    processor = UPSProcessor.from_pretrained(final)
    assert model.config.pose_estimation_target_frames == processor.pose_estimation_target_frames == 3
    with pytest.raises(ValueError, match="--pose_target_frames must be positive"):
        _train_script().parse_args(["--pose_target_frames", "0"])
    with pytest.raises(ValueError, match="--ema_decay must be in"):
        _train_script().parse_args(["--ema_decay", "1"])
    pipe = pipeline("pose-sequence-modeling", model=model, processor=processor)
    video = np.random.default_rng(0).normal(scale=200.0, size=(10, 17, 2)).astype(np.float32)
    lifted = pipe(video, task="pose_estimation", layout="h36m17", frames="all", window=9)
    assert lifted["keypoints_3d"].shape == (10, 17, 3) and np.isfinite(lifted["keypoints_3d"]).all()
