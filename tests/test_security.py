"""Hostile files: pickles that would run code, pickled checkpoints, and checkpoint folders carrying other code.

Every payload (tests/skeleton_files.py: os.system, posix.system, builtins.eval, builtins.exec, subprocess.Popen,
functools.partial, each via __reduce__) would create a marker file when unpickled by the standard unpickler; each
test asserts the marker does NOT exist afterwards and that a clear error was raised, through every path a user's
file or folder takes: `pose_io.safe_load_pickle` / `safe_load_npz` / `load_pose_file`, the pipeline given the path,
`ups predict` in a subprocess, and model loading (`from_pretrained`, `pipeline(model=folder)`).
"""

import io
import os
import pickle
import subprocess
import sys
import time
import tokenize
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, pipeline

from modeling_ups import PoseSequenceModelingPipeline, UPSForPoseSequenceModeling
from modeling_ups.pose_io import UnsafePickleError, load_pose_file, safe_load_npz, safe_load_pickle
from skeleton_files import PAYLOAD_GLOBALS, PAYLOADS, payload
from ups_checkpoint import motion, save_checkpoint, single_thread, tiny_model, tiny_processor  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")
REPO = Path(__file__).resolve().parents[1]


def assert_not_executed(marker: Path):
    time.sleep(0.05)  # subprocess.Popen would run asynchronously
    assert not marker.exists(), "the payload ran"


def malicious_pickle(path: Path, kind: str, marker: Path, where: str) -> Path:
    """A pyskl-looking pickle whose payload sits at the top, in the annotation list or in place of keypoints."""
    evil = payload(kind, marker)
    content = {"top": evil,
               "annotation": {"split": {"xsub_train": ["a"]}, "annotations": [evil]},
               "keypoint": {"frame_dir": "a", "label": 0, "keypoint": evil}}[where]
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path


def malicious_npz(path: Path, kind: str, marker: Path, key: str) -> Path:
    """An npz with a numeric pose member and an object member hiding the payload."""
    member = np.empty((), dtype=object)
    member[()] = {"S1": {"Walking": payload(kind, marker)}}
    np.savez(path, **{"poses": np.ones((4, 17, 2), np.float32), key: member})
    return path


@pytest.fixture(scope="module")
def pipe():
    return pipeline("pose-sequence-modeling", model=tiny_model(), processor=tiny_processor())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model")


# --------------------------------------------------------------------------------------------- pose files
@pytest.mark.parametrize("where", ["top", "annotation", "keypoint"])
@pytest.mark.parametrize("kind", PAYLOADS)
def test_pickle_payloads_are_refused_by_every_reader(tmp_path, pipe, kind, where):
    marker = tmp_path / "pwned"
    path = malicious_pickle(tmp_path / "evil.pkl", kind, marker, where)
    expected = PAYLOAD_GLOBALS[kind].replace(".", r"\.")
    for load in (safe_load_pickle, load_pose_file, pipe):
        with pytest.raises(UnsafePickleError, match=f"forbidden global '{expected}'") as info:
            load(str(path))
        assert "evil.pkl" in str(info.value) and isinstance(info.value, ValueError)
    with pytest.raises(UnsafePickleError):
        safe_load_pickle(io.BytesIO(path.read_bytes()))  # file objects too
    assert_not_executed(marker)


@pytest.mark.parametrize("key", ["positions_3d", "scores"])
@pytest.mark.parametrize("kind", PAYLOADS)
def test_npz_object_member_payloads_are_refused_by_every_reader(tmp_path, pipe, kind, key):
    marker = tmp_path / "pwned"
    path = malicious_npz(tmp_path / "evil.npz", kind, marker, key)
    expected = PAYLOAD_GLOBALS[kind].replace(".", r"\.")
    for load in (safe_load_npz, load_pose_file, pipe):
        with pytest.raises(UnsafePickleError, match=f"forbidden global '{expected}'") as info:
            load(str(path))
        assert "evil.npz" in str(info.value)
    assert_not_executed(marker)


def test_npy_object_array_payload_is_refused(tmp_path, pipe):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([payload("os.system", marker)], dtype=object), allow_pickle=True)
    for load in (load_pose_file, pipe):
        with pytest.raises(UnsafePickleError, match="posix.system"):
            load(str(path))
    assert_not_executed(marker)


def test_the_payloads_are_real(tmp_path):
    """Without the restricted unpickler the same bytes do run code (so the tests above can fail)."""
    marker = tmp_path / "pwned"
    path = malicious_pickle(tmp_path / "evil.pkl", "builtins.exec", marker, "keypoint")
    pickle.loads(path.read_bytes())
    assert marker.exists()
    marker.unlink()
    np.load(malicious_npz(tmp_path / "evil.npz", "builtins.exec", marker, "scores"), allow_pickle=True)["scores"]
    assert marker.exists()


def run_cli(*argv, cwd, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "modeling_ups.cli", "predict", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
def test_ups_predict_refuses_malicious_files(tmp_path, checkpoint, suffix):
    marker = tmp_path / "pwned"
    if suffix == ".pkl":
        path = malicious_pickle(tmp_path / "evil.pkl", "os.system", marker, "keypoint")
    else:
        path = malicious_npz(tmp_path / "evil.npz", "subprocess.Popen", marker, "positions_3d")
    run = run_cli(path, "--model", checkpoint, cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "ups: error:" in run.stderr and "forbidden global" in run.stderr
    assert_not_executed(marker)


# --------------------------------------------------------------------------------------------- checkpoints
@pytest.fixture
def bin_only_checkpoint(tmp_path, checkpoint):
    """A complete checkpoint folder whose weights are a pickled pytorch_model.bin carrying a payload."""
    folder = tmp_path / "bin_only"
    folder.mkdir()
    for item in checkpoint.iterdir():
        if item.name != "model.safetensors":
            (folder / item.name).write_bytes(item.read_bytes())
    marker = tmp_path / "pwned"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": payload("builtins.exec", marker)}))
    return folder, marker


def test_a_pickled_checkpoint_is_never_loaded(bin_only_checkpoint):
    folder, marker = bin_only_checkpoint
    for load in (UPSForPoseSequenceModeling.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(OSError, match="no file named model.safetensors"):
            load(str(folder))
    # The pipeline factory reports a model it cannot load as a ValueError quoting the OSError.
    with pytest.raises(ValueError, match="no file named model.safetensors"):
        pipeline("pose-sequence-modeling", model=str(folder))
    with pytest.raises(ValueError, match="safetensors only"):
        UPSForPoseSequenceModeling.from_pretrained(str(folder), use_safetensors=False)
    assert_not_executed(marker)


def test_even_a_harmless_bin_checkpoint_is_refused(bin_only_checkpoint):
    """Not only torch's weights-only unpickler stops the payload: the .bin is not opened at all."""
    folder, _ = bin_only_checkpoint
    torch.save(tiny_model().state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(OSError, match="model.safetensors"):
        UPSForPoseSequenceModeling.from_pretrained(str(folder))


def test_ups_predict_refuses_a_pickled_checkpoint(tmp_path, bin_only_checkpoint):
    folder, marker = bin_only_checkpoint
    np.save(tmp_path / "clip.npy", motion(9, 25, 3, persons=None).astype(np.float32))
    run = run_cli(tmp_path / "clip.npy", "--model", folder, cwd=tmp_path)
    assert run.returncode == 1 and "ups: error:" in run.stderr and "model.safetensors" in run.stderr
    assert "Traceback" not in run.stderr
    assert_not_executed(marker)


# --------------------------------------------------------------------------------------------- remote code
PACKAGE_DIRS = ("modeling_ups", "datasets_scripts", "examples")


def trust_remote_code_set_to_true(path: Path):
    """Lines of ``path`` whose CODE (not strings or comments) sets trust_remote_code to True: keyword arguments
    ``trust_remote_code=True`` and mappings ``"trust_remote_code": True``."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)]
    hits = []
    for a, b, c in zip(tokens, tokens[1:], tokens[2:]):
        names_flag = (a.type == tokenize.NAME and a.string == "trust_remote_code") or (
            a.type == tokenize.STRING and a.string.strip("'\"") == "trust_remote_code")
        if names_flag and b.string in ("=", ":") and c.string == "True":
            hits.append(f"{path.relative_to(REPO)}:{a.start[0]}")
    return hits


def test_the_package_never_turns_trust_remote_code_on():
    files = [p for d in PACKAGE_DIRS for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 20
    hits = [hit for path in files for hit in trust_remote_code_set_to_true(path)]
    assert hits == [], f"trust_remote_code=True in package code: {hits}"


def test_the_scanner_finds_code_but_not_documentation(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""pipeline(model=m, trust_remote_code=True) in a docstring"""\n'
                      "# trust_remote_code=True in a comment\n"
                      "options = {'trust_remote_code': True}\n"
                      "load(path, trust_remote_code = True)\n"
                      "load(path, trust_remote_code=args.trust_remote_code)\n")
    hits = trust_remote_code_set_to_true(sample.rename(REPO / "tests" / f".scan_{os.getpid()}.py"))
    (REPO / "tests" / f".scan_{os.getpid()}.py").unlink()
    assert [int(h.rsplit(":", 1)[1]) for h in hits] == [3, 4]


@pytest.fixture
def folder_with_other_code(tmp_path, checkpoint):
    """A Hub-style folder (model, processor, copied code, custom_pipelines) whose code files would create a marker
    when imported: what a tampered checkpoint looks like."""
    folder = tmp_path / "tampered"
    pipe = pipeline("pose-sequence-modeling", model=UPSForPoseSequenceModeling.from_pretrained(checkpoint),
                    processor=tiny_processor())
    pipe.save_pretrained(folder)
    marker = tmp_path / "pwned"
    code_files = sorted(folder.glob("*.py"))
    assert {p.name for p in code_files} >= {"modeling_ups.py", "pipeline_ups.py", "configuration_ups.py",
                                            "processing_ups.py"}
    for path in code_files:
        path.write_text(f"open({str(marker)!r}, 'a').close()\n" + path.read_text())
    return folder, marker


def test_loading_a_folder_does_not_run_its_code(folder_with_other_code):
    folder, marker = folder_with_other_code
    # transformers asks for the user's flag before running a folder's pipeline code ...
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        pipeline("pose-sequence-modeling", model=str(folder))
    # ... and with the package's pipeline class, or through the Auto classes, the installed code is used.
    pipe = pipeline("pose-sequence-modeling", model=str(folder), pipeline_class=PoseSequenceModelingPipeline)
    assert type(pipe) is PoseSequenceModelingPipeline and type(pipe.model) is UPSForPoseSequenceModeling
    assert len(pipe(motion(9, 25, 3, persons=None).astype(np.float32), top_k=2)) == 2
    assert type(AutoModel.from_pretrained(str(folder))) is UPSForPoseSequenceModeling
    assert_not_executed(marker)


def test_ups_predict_runs_the_installed_code_not_the_folders(tmp_path, folder_with_other_code):
    folder, marker = folder_with_other_code
    np.save(tmp_path / "clip.npy", motion(9, 25, 3, persons=None).astype(np.float32))
    run = run_cli(tmp_path / "clip.npy", "--model", folder, "--top-k", "2", cwd=tmp_path,
                  env_extra={"HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert run.returncode == 0, run.stderr
    assert '"predictions"' in run.stdout
    assert_not_executed(marker)
