"""The peer models of the side-by-side benchmark, imported from their public repositories' source.

The peers' code is never part of this repository: ``bench/peers.py --peers DIR`` reads it from a folder outside it
(README.md, "Benchmarks"), laid out as

    DIR/pyskl          https://github.com/kennymckormick/pyskl          (CTR-GCN, ST-GCN, GCNHead)
    DIR/VideoPose3D    https://github.com/facebookresearch/VideoPose3D  (TemporalModel, TemporalModelOptimized1f)

each a git checkout (or worktree), or an exported tree with a ``PEER_COMMIT`` file holding the commit hash.

pyskl imports mmcv (1.x) and its own registries in every package ``__init__``. The model files this benchmark needs
use nothing of mmcv but ``build_norm_layer``/``build_activation_layer`` (BN -> ``nn.BatchNorm2d``, ReLU ->
``nn.ReLU``, as mmcv builds them), the registry decorators and ``normal_init``; so the files are loaded one by one
with importlib from their paths under a private package name, with those few names stubbed (``stub_mmcv``), and
no package ``__init__`` of pyskl runs. The model code itself runs unchanged. VideoPose3D's ``common/model.py``
imports torch only and is loaded from its path the same way.
"""

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn

PYSKL_DIR, VIDEOPOSE3D_DIR = "pyskl", "VideoPose3D"
PYSKL_URL = "https://github.com/kennymckormick/pyskl"
VIDEOPOSE3D_URL = "https://github.com/facebookresearch/VideoPose3D"
_PKG = "_ups_bench_peer_pyskl"  # private package name: never clashes with an installed pyskl


def peer_commit(folder: Path) -> str:
    """The commit of a peer checkout: ``git rev-parse HEAD`` in it, else its ``PEER_COMMIT`` file, else
    ``"unknown"``."""
    folder = Path(folder)
    marker = folder / "PEER_COMMIT"
    if marker.is_file():
        return marker.read_text().strip().split()[0]
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=False, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    out = done.stdout.strip()
    return out if done.returncode == 0 and len(out) == 40 else "unknown"


def _load_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _package(name: str, path: Path, **attributes):
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


class _Registry:
    """Stands in for mmcv's ``Registry``: ``register_module()`` returns the class unchanged."""

    def __init__(self, name):
        self.name = name

    def register_module(self, *args, **kwargs):
        if args and isinstance(args[0], type):
            return args[0]
        return lambda cls: cls


def _build_norm_layer(cfg, num_features, postfix=""):
    """mmcv.cnn.build_norm_layer for the types pyskl's GCN units use (``BN`` for 4-D feature maps)."""
    cfg = dict(cfg)
    kind = cfg.pop("type")
    layers = {"BN": nn.BatchNorm2d, "BN2d": nn.BatchNorm2d, "BN1d": nn.BatchNorm1d, "BN3d": nn.BatchNorm3d}
    if kind not in layers:
        raise NotImplementedError(f"norm type {kind!r} is not stubbed; install mmcv 1.x")
    cfg.pop("requires_grad", None)
    return f"bn{postfix}", layers[kind](num_features, **cfg)


def _build_activation_layer(cfg):
    cfg = dict(cfg)
    kind = cfg.pop("type")
    layers = {"ReLU": nn.ReLU, "LeakyReLU": nn.LeakyReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "GELU": nn.GELU}
    if kind not in layers:
        raise NotImplementedError(f"activation type {kind!r} is not stubbed; install mmcv 1.x")
    return layers[kind](**cfg)


def _normal_init(module, mean=0.0, std=1.0, bias=0.0):
    if getattr(module, "weight", None) is not None:
        nn.init.normal_(module.weight, mean, std)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)


def stub_mmcv() -> dict:
    """The mmcv names pyskl's GCN, TCN and head files import, as modules to put in ``sys.modules``."""
    mmcv = types.ModuleType("mmcv")
    cnn = types.ModuleType("mmcv.cnn")
    cnn.build_norm_layer, cnn.build_activation_layer = _build_norm_layer, _build_activation_layer
    cnn.normal_init, cnn.MODELS = _normal_init, _Registry("models")
    utils = types.ModuleType("mmcv.utils")
    utils.Registry, utils._BatchNorm = _Registry, nn.modules.batchnorm._BatchNorm
    runner = types.ModuleType("mmcv.runner")
    runner.load_checkpoint = lambda *a, **k: None
    mmcv.cnn, mmcv.utils, mmcv.runner = cnn, utils, runner
    return {"mmcv": mmcv, "mmcv.cnn": cnn, "mmcv.utils": utils, "mmcv.runner": runner}


def load_pyskl(root: Path) -> dict:
    """CTRGCN, STGCN and GCNHead from pyskl's source at ``root`` (the repository folder)."""
    src = Path(root) / "pyskl"
    if not (src / "models" / "gcns" / "ctrgcn.py").is_file():
        raise FileNotFoundError(f"{root}: not a pyskl checkout (no pyskl/models/gcns/ctrgcn.py)")
    saved = {name: sys.modules.get(name) for name in ("mmcv", "mmcv.cnn", "mmcv.utils", "mmcv.runner")}
    sys.modules.update(stub_mmcv())
    try:
        _package(_PKG, src)
        utils = _package(f"{_PKG}.utils", src / "utils")
        graph = _load_file(f"{_PKG}.utils.graph", src / "utils" / "graph.py")
        utils.Graph, utils.cache_checkpoint = graph.Graph, (lambda path: path)
        _package(f"{_PKG}.core", src / "core", top_k_accuracy=None)
        _package(f"{_PKG}.models", src / "models")
        _package(f"{_PKG}.models.builder", src / "models", BACKBONES=_Registry("backbones"),
                 HEADS=_Registry("heads"), build_loss=lambda cfg: nn.CrossEntropyLoss())
        _package(f"{_PKG}.models.gcns", src / "models" / "gcns")
        units = _package(f"{_PKG}.models.gcns.utils", src / "models" / "gcns" / "utils")
        for name in ("init_func", "tcn", "gcn", "msg3d_utils"):
            module = _load_file(f"{_PKG}.models.gcns.utils.{name}", src / "models" / "gcns" / "utils" / f"{name}.py")
            units.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
        ctrgcn = _load_file(f"{_PKG}.models.gcns.ctrgcn", src / "models" / "gcns" / "ctrgcn.py")
        stgcn = _load_file(f"{_PKG}.models.gcns.stgcn", src / "models" / "gcns" / "stgcn.py")
        _package(f"{_PKG}.models.heads", src / "models" / "heads")
        _load_file(f"{_PKG}.models.heads.base", src / "models" / "heads" / "base.py")
        heads = _load_file(f"{_PKG}.models.heads.simple_head", src / "models" / "heads" / "simple_head.py")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return {"CTRGCN": ctrgcn.CTRGCN, "STGCN": stgcn.STGCN, "GCNHead": heads.GCNHead, "commit": peer_commit(root),
            "url": PYSKL_URL,
            "import": "pyskl model files (utils/graph.py, models/gcns/{ctrgcn,stgcn}.py, models/gcns/utils/*.py, "
                      "models/heads/{base,simple_head}.py) loaded by path with importlib; mmcv's registry decorators, "
                      "build_norm_layer (BN -> BatchNorm2d), build_activation_layer (ReLU) and normal_init stubbed "
                      "(bench/peer_models.py); model code unchanged"}


class PysklRecognizer(nn.Module):
    """pyskl's ``RecognizerGCN.forward_test`` for one clip per sample: backbone, ``GCNHead`` (pool over persons,
    frames and joints, linear layer), softmax (its default ``average_clips='prob'``)."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.cls_head = backbone, head

    def forward(self, keypoint):  # (N, M, T, V, C)
        return self.cls_head(self.backbone(keypoint)).softmax(dim=-1)


def pyskl_recognizer(pyskl: dict, name: str, num_classes: int = 60) -> PysklRecognizer:
    """``name`` = ``"ctrgcn"`` or ``"stgcn"`` as in pyskl's ``configs/{ctrgcn,stgcn}/*_pyskl_ntu60_xsub_3dkp/j.py``:
    the NTU-25 graph (``layout='nturgb+d'``, mode ``spatial`` / ``stgcn_spatial``), a 256-channel ``GCNHead`` with
    60 classes, weights from the models' own initialisation, eval mode."""
    if name == "ctrgcn":
        backbone = pyskl["CTRGCN"](graph_cfg=dict(layout="nturgb+d", mode="spatial"))
    elif name == "stgcn":
        backbone = pyskl["STGCN"](graph_cfg=dict(layout="nturgb+d", mode="stgcn_spatial"))
    else:
        raise ValueError(f"unknown pyskl model {name!r}")
    backbone.init_weights()
    head = pyskl["GCNHead"](num_classes=num_classes, in_channels=256)
    head.init_weights()
    return PysklRecognizer(backbone, head).eval().requires_grad_(False)


def load_videopose3d(root: Path) -> dict:
    """TemporalModel and TemporalModelOptimized1f from VideoPose3D's ``common/model.py`` at ``root``."""
    path = Path(root) / "common" / "model.py"
    if not path.is_file():
        raise FileNotFoundError(f"{root}: not a VideoPose3D checkout (no common/model.py)")
    module = _load_file("_ups_bench_peer_videopose3d_model", path)
    return {"TemporalModel": module.TemporalModel, "TemporalModelOptimized1f": module.TemporalModelOptimized1f,
            "commit": peer_commit(root), "url": VIDEOPOSE3D_URL,
            "import": "VideoPose3D common/model.py loaded by path with importlib (it imports torch only); "
                      "model code unchanged"}


def videopose3d_models(vp3d: dict, filter_widths, channels: int = 1024, joints: int = 17, dropout: float = 0.25):
    """The two forms of one VideoPose3D network as ``run.py`` builds them (H36M-17 2D in, 17 3D joints out,
    non-causal, ``--channels 1024``, dropout 0.25): ``TemporalModelOptimized1f`` (one output frame per window of
    the receptive field, strided convolutions; its training model) and ``TemporalModel`` (dilated convolutions over a
    whole padded sequence; its evaluation model), sharing weights as ``run.py`` copies them; eval mode."""
    window_model = vp3d["TemporalModelOptimized1f"](joints, 2, joints, filter_widths=list(filter_widths),
                                                    causal=False, dropout=dropout, channels=channels)
    sequence_model = vp3d["TemporalModel"](joints, 2, joints, filter_widths=list(filter_widths), causal=False,
                                           dropout=dropout, channels=channels)
    sequence_model.load_state_dict(window_model.state_dict())
    return window_model.eval().requires_grad_(False), sequence_model.eval().requires_grad_(False)


def normalize_screen_coordinates(pixels: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """VideoPose3D's ``common/camera.normalize_screen_coordinates``: [0, w] -> [-1, 1], aspect ratio kept."""
    return pixels / width * 2 - torch.tensor([1.0, height / width], dtype=pixels.dtype)


def _edge_pad(keypoints: torch.Tensor, pad: int) -> torch.Tensor:
    """(T, J, C) -> (T + 2 * pad, J, C), the first and last frames repeated (VideoPose3D's generators' padding)."""
    return torch.cat([keypoints[:1].expand(pad, -1, -1), keypoints, keypoints[-1:].expand(pad, -1, -1)])


def lift_windows(model, keypoints: torch.Tensor, receptive_field: int, batch: int = 16) -> torch.Tensor:
    """VideoPose3D window by window: the (T, J, 2) sequence edge-padded by ``(receptive_field - 1) // 2`` frames on
    each side (its generators' padding), one ``receptive_field``-frame window per output frame, ``batch`` windows
    per call of ``TemporalModelOptimized1f``; returns (T, J, 3)."""
    padded = _edge_pad(keypoints, (receptive_field - 1) // 2)
    windows = padded.unfold(0, receptive_field, 1).permute(0, 3, 1, 2)  # (T, receptive_field, J, 2), a view
    out = [model(windows[i:i + batch].contiguous())[:, 0] for i in range(0, windows.shape[0], batch)]
    return torch.cat(out)


def lift_sequence(model, keypoints: torch.Tensor, receptive_field: int) -> torch.Tensor:
    """VideoPose3D's evaluation: the whole edge-padded sequence through ``TemporalModel`` in one call (no test-time
    flip augmentation); returns (T, J, 3)."""
    padded = _edge_pad(keypoints, (receptive_field - 1) // 2)
    return model(padded[None])[0]
