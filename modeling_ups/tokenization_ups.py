"""Tokenizer for UPS: the paper's unified output vocabulary (action labels, quantised x/y/z bins, end-of-task tokens).

Id layout (`docs/design.md`, "Vocabulary"; `configuration_ups.UPSVocabularyLayout` derives the ids for the config and
this tokenizer alike):

    0 <pad>, 1 <s>, 2 <unk>
    3 ... 3+L-1                 one token per action label            (L = num_label_tokens)
    then num_bins x-bins <x_0>..., num_bins y-bins <y_0>..., num_bins z-bins <z_0>...
    then <eot_ar>, <eot_pe>, <eot_ap>

Every entry keeps a text prompt (the label text, "The first horizontal coordinate", "pose estimation ends here",
...): the model's vocabulary embeddings are initialised from a text encoder's features of these prompts.
"""

import difflib
import json
import math
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from transformers.tokenization_utils import PreTrainedTokenizer
from transformers.utils import logging

from .configuration_ups import EOT_TOKENS, POSE_ESTIMATION_TASK, SPECIAL_TOKENS, UPSVocabularyLayout

logger = logging.get_logger(__name__)

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "prompts_file": "prompts.json"}

SPECIAL_PROMPTS = ("padding", "start of sequence", "unknown")
EOT_PROMPTS = ("action recognition ends here", "pose estimation ends here", "action prediction ends here")
AXES = ("x", "y", "z")
# x: horizontal, y: vertical, z: depth, in the camera frame.
AXIS_WORDS = ("horizontal", "vertical", "depth")
# Root-relative camera-frame millimetres; +-1.2 m holds a standing adult's joints around the pelvis.
DEFAULT_COORDINATE_RANGE = ((-1200.0, 1200.0),) * 3

_ORDINAL_WORDS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
    "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth",
    "twentieth",
)


def ordinal(n: int) -> str:
    """``1 -> "first"`` ... ``20 -> "twentieth"``, then ``"21st"``, ``"22nd"``, ``"111th"``."""
    if 1 <= n <= len(_ORDINAL_WORDS):
        return _ORDINAL_WORDS[n - 1]
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def label_token(label: str) -> str:
    """Vocabulary token of an action label: CamelCase split, lower case, whitespace runs -> ``_``.

    Labels of different datasets share a token when this normalised text is equal
    (``"SittingDown"`` (Human3.6M) and ``"sitting down"`` (NTU) -> ``sitting_down``).
    """
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(label).strip())
    text = " ".join(text.lower().split())
    if not text:
        raise ValueError(f"Empty action label {label!r}")
    return text.replace(" ", "_")


def build_vocabulary(labels: Sequence[str], num_bins: int) -> Tuple[Dict[str, int], Dict[str, str]]:
    """(token -> id, token -> prompt) for ``labels`` (deduplicated by `label_token`, first text kept)."""
    tokens = list(SPECIAL_TOKENS)
    prompts = dict(zip(SPECIAL_TOKENS, SPECIAL_PROMPTS))
    for label in labels:
        token = label_token(label)
        if token not in prompts:
            tokens.append(token)
            prompts[token] = str(label).strip()
    for axis, word in zip(AXES, AXIS_WORDS):
        for b in range(num_bins):
            token = f"<{axis}_{b}>"
            tokens.append(token)
            prompts[token] = f"The {ordinal(b + 1)} {word} coordinate"
    tokens.extend(EOT_TOKENS)
    prompts.update(zip(EOT_TOKENS, EOT_PROMPTS))
    return {t: i for i, t in enumerate(tokens)}, prompts


class UPSTokenizer(UPSVocabularyLayout, PreTrainedTokenizer):
    r"""
    The unified UPS vocabulary: `[<pad>, <s>, <unk>] + labels + x-bins + y-bins + z-bins + [<eot_ar>, <eot_pe>,
    <eot_ap>]`, with one text prompt per entry.

    Coordinates are millimetres, root-relative, in the camera frame; axis `a` is split into `num_bins` equal bins
    over `coordinate_range[a]`, and decoding returns bin centres, so the round-trip error is at most half a bin
    (`bin_width / 2`, 4.7 mm for the defaults).

    Build it from label names with `UPSTokenizer(labels=[...])` or load a saved one with `from_pretrained`.

    Args:
        vocab_file (`str`, *optional*): `vocab.json` (token -> id).
        prompts_file (`str`, *optional*): `prompts.json` (token -> prompt, in id order).
        labels (`list[str]`, *optional*): action labels to build the vocabulary from (when no `vocab_file`).
        num_bins (`int`, *optional*, defaults to 256): bins per axis.
        coordinate_range (`list[list[float]]`, *optional*, defaults to `[[-1200, 1200]] * 3`):
            `[low, high]` in millimetres for x, y, z (one pair is used for all three axes).
        out_of_range (`str`, *optional*, defaults to `"clip"`): coordinates outside the range are clipped to the
            edge bins with a warning (`"clip"`) or raise a ValueError (`"error"`).
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids"]

    def __init__(
        self,
        vocab_file: Optional[str] = None,
        prompts_file: Optional[str] = None,
        labels: Optional[Sequence[str]] = None,
        num_bins: int = 256,
        coordinate_range: Optional[Sequence[Sequence[float]]] = None,
        out_of_range: str = "clip",
        pad_token: str = "<pad>",
        bos_token: str = "<s>",
        unk_token: str = "<unk>",
        **kwargs,
    ):
        num_bins = int(num_bins)
        if num_bins < 1:
            raise ValueError(f"num_bins must be positive, got {num_bins}")
        coordinate_range = DEFAULT_COORDINATE_RANGE if coordinate_range is None else coordinate_range
        coordinate_range = np.asarray(coordinate_range, dtype=np.float64).reshape(-1, 2)
        if coordinate_range.shape[0] == 1:
            coordinate_range = np.repeat(coordinate_range, 3, axis=0)
        if coordinate_range.shape != (3, 2) or np.any(coordinate_range[:, 1] <= coordinate_range[:, 0]):
            raise ValueError(
                f"coordinate_range must be [low, high] (low < high) per axis x, y, z, got {coordinate_range.tolist()}"
            )
        if out_of_range not in ("clip", "error"):
            raise ValueError(f"out_of_range must be 'clip' or 'error', got {out_of_range!r}")
        self.num_bins = num_bins
        self.coordinate_range = coordinate_range.tolist()
        self.out_of_range = out_of_range

        # The vocabulary must exist before PreTrainedTokenizer.__init__, which calls get_vocab().
        if vocab_file is not None:
            with open(vocab_file, encoding="utf-8") as f:
                self.encoder = {str(t): int(i) for t, i in json.load(f).items()}
            prompts = {}
            if prompts_file is not None and os.path.isfile(prompts_file):
                with open(prompts_file, encoding="utf-8") as f:
                    prompts = json.load(f)
            _, default_prompts = build_vocabulary([], num_bins)
            self._prompts = {t: prompts.get(t, default_prompts.get(t, t.replace("_", " "))) for t in self.encoder}
        elif labels is not None:
            self.encoder, self._prompts = build_vocabulary(labels, num_bins)
        else:
            raise ValueError("UPSTokenizer needs a vocab_file or a list of labels")
        self.decoder = {i: t for t, i in self.encoder.items()}
        self._check_layout()

        # The EOTs are special (skipped by `decode(..., skip_special_tokens=True)`); a saved config lists them again.
        extra = [t for t in (kwargs.pop("extra_special_tokens", None) or []) if str(t) not in EOT_TOKENS]
        super().__init__(
            pad_token=pad_token,
            bos_token=bos_token,
            unk_token=unk_token,
            extra_special_tokens=list(EOT_TOKENS) + extra,
            num_bins=num_bins,
            coordinate_range=self.coordinate_range,
            out_of_range=out_of_range,
            special_tokens_pattern="none",
            **kwargs,
        )

    def _check_layout(self) -> None:
        size = len(self.encoder)
        if sorted(self.decoder) != list(range(size)) or len(self.decoder) != size:
            raise ValueError("vocab.json ids must be the distinct integers 0 .. len(vocab) - 1")
        self._num_label_tokens = size - len(SPECIAL_TOKENS) - 3 * self.num_bins - len(EOT_TOKENS)
        expected = list(SPECIAL_TOKENS)
        labels_end = len(SPECIAL_TOKENS) + max(self._num_label_tokens, 0)
        expected += [self.decoder[i] for i in range(len(SPECIAL_TOKENS), labels_end)]
        expected += [f"<{a}_{b}>" for a in AXES for b in range(self.num_bins)] + list(EOT_TOKENS)
        if self._num_label_tokens < 0 or [self.decoder[i] for i in range(size)] != expected:
            raise ValueError(
                f"vocab.json does not follow the UPS layout [specials, labels, {self.num_bins} bins per axis, EOTs] "
                f"(check num_bins={self.num_bins})"
            )

    # ------------------------------------------------------------------ PreTrainedTokenizer interface
    def get_vocab(self) -> Dict[str, int]:
        return dict(self.encoder, **self.added_tokens_encoder)

    def _tokenize(self, text: str, **kwargs) -> List[str]:
        return text.split()

    def _convert_token_to_id(self, token: str) -> int:
        return self.encoder.get(token, self.encoder[SPECIAL_TOKENS[2]])

    def _convert_id_to_token(self, index: int) -> str:
        return self.decoder.get(int(index), SPECIAL_TOKENS[2])

    def convert_tokens_to_string(self, tokens: List[str]) -> str:
        return " ".join(tokens)

    def save_vocabulary(self, save_directory: str, filename_prefix: Optional[str] = None) -> Tuple[str, str]:
        if not os.path.isdir(save_directory):
            raise ValueError(f"save_vocabulary: {save_directory} is not a directory")
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        vocab_path = os.path.join(save_directory, prefix + VOCAB_FILES_NAMES["vocab_file"])
        prompts_path = os.path.join(save_directory, prefix + VOCAB_FILES_NAMES["prompts_file"])
        ordered = [self.decoder[i] for i in range(len(self.decoder))]
        with open(vocab_path, "w", encoding="utf-8") as f:
            json.dump({t: self.encoder[t] for t in ordered}, f, indent=1, ensure_ascii=False)
            f.write("\n")
        with open(prompts_path, "w", encoding="utf-8") as f:
            json.dump({t: self._prompts[t] for t in ordered}, f, indent=1, ensure_ascii=False)
            f.write("\n")
        return vocab_path, prompts_path

    # ------------------------------------------------------------------ vocabulary layout
    @property
    def num_label_tokens(self) -> int:
        return self._num_label_tokens

    @property
    def label_names(self) -> List[str]:
        """Label texts in id order (the first dataset's spelling when labels share a token)."""
        return [self._prompts[self.decoder[i]] for i in self.label_token_ids]

    @property
    def label_to_id(self) -> Dict[str, int]:
        return {name: i for name, i in zip(self.label_names, self.label_token_ids)}

    @property
    def prompts(self) -> List[str]:
        """Text prompt of every vocabulary entry, in id order."""
        return [self._prompts[self.decoder[i]] for i in range(len(self.decoder))]

    @property
    def bin_width(self) -> np.ndarray:
        """Bin width per axis in millimetres, shape (3,)."""
        r = np.asarray(self.coordinate_range)
        return (r[:, 1] - r[:, 0]) / self.num_bins

    # ------------------------------------------------------------------ labels
    def label_id(self, label: Union[str, int]) -> int:
        """Token id of ``label`` (text in any spelling that normalises to a label token, or a class index)."""
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if not 0 <= int(label) < self.num_label_tokens:
                raise ValueError(f"Label index {label} is outside [0, {self.num_label_tokens})")
            return self.label_token_offset + int(label)
        if not isinstance(label, str):
            raise TypeError(f"label must be a string or a class index, got {type(label).__name__}")
        token = label_token(label)
        index = self.encoder.get(token)
        if index is None or index not in self.label_token_ids:
            close = difflib.get_close_matches(label, self.label_names, n=5, cutoff=0.5)
            hint = f"; close names: {close}" if close else ""
            raise ValueError(f"Unknown action label {label!r} ({self.num_label_tokens} labels known){hint}")
        return index

    def encode_label(self, label: Union[str, int], task: str = "action_recognition") -> List[int]:
        """``[label_id, EOT]`` with the EOT of ``task`` (early prediction ends with EOT_AP)."""
        return [self.label_id(label), self.task_eot_token_id(task)]

    def decode_label(self, ids: Union[int, Iterable[int]]) -> str:
        """Label text of the first label token in ``ids`` (leading `<s>`/`<pad>` are skipped)."""
        ids = _token_ids(ids)
        for i in ids:
            if i in (self.pad_token_id, self.bos_token_id):
                continue
            if i in self.label_token_ids:
                return self._prompts[self.decoder[i]]
            break
        raise ValueError(f"No action-label token at the start of {ids[:8]}")

    # ------------------------------------------------------------------ coordinates
    def coordinates_to_bins(self, coordinates, out_of_range: Optional[str] = None) -> np.ndarray:
        """Bin index (0 .. num_bins-1) of every coordinate of ``coordinates`` (..., 3) in millimetres."""
        values = _real_array(coordinates, "coordinates")
        if values.ndim == 0 or values.shape[-1] != 3:
            raise ValueError(f"coordinates must end in an x, y, z axis of size 3, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("coordinates contain NaN or inf")
        mode = self.out_of_range if out_of_range is None else out_of_range
        if mode not in ("clip", "error"):
            raise ValueError(f"out_of_range must be 'clip' or 'error', got {mode!r}")
        r = np.asarray(self.coordinate_range)
        outside = (values < r[:, 0]) | (values > r[:, 1])
        if outside.any():
            worst = values[outside][np.argmax(np.abs(values[outside]))]
            message = (
                f"{int(outside.sum())} coordinate(s) outside coordinate_range {self.coordinate_range} mm "
                f"(e.g. {worst:.1f}); are they millimetres and root-relative?"
            )
            if mode == "error":
                raise ValueError(message)
            logger.warning(message + " They are clipped to the edge bins.")
        # Clip before the integer cast: a float beyond int64 (a clipped 1e300) has no defined integer value.
        bins = np.clip(np.floor((values - r[:, 0]) / self.bin_width), 0, self.num_bins - 1)
        return bins.astype(np.int64)

    def bins_to_coordinates(self, bins) -> np.ndarray:
        """Bin centres (millimetres) of bin indices ``bins`` (..., 3)."""
        bins = np.asarray(bins, dtype=np.float64)
        r = np.asarray(self.coordinate_range)
        return r[:, 0] + (bins + 0.5) * self.bin_width

    def encode_pose(self, pose, out_of_range: Optional[str] = None, add_eot: bool = True) -> List[int]:
        """Token ids of ``pose`` (K, J, 3) or (J, 3) in millimetres: x, y, z per joint per frame, then EOT_PE."""
        pose = _real_array(pose, "pose")
        if pose.ndim == 2:
            pose = pose[None]
        if pose.ndim != 3 or pose.shape[-1] != 3 or pose.shape[0] == 0 or pose.shape[1] == 0:
            raise ValueError(f"pose must be shaped (K, J, 3) or (J, 3), got {pose.shape}")
        bins = self.coordinates_to_bins(pose, out_of_range=out_of_range)
        ids = bins + self.bin_token_offset + np.arange(3) * self.num_bins
        ids = ids.reshape(-1).tolist()
        return ids + [self.task_eot_token_id(POSE_ESTIMATION_TASK)] if add_eot else ids

    def decode_pose(
        self, ids, num_joints: int, num_frames: Optional[int] = None, strict: bool = True
    ) -> np.ndarray:
        """Coordinates (K, J, 3) in millimetres (bin centres) from pose token ids.

        Leading `<s>`/`<pad>` are skipped and decoding stops at the first end-of-task token. With ``strict``
        (default) every token must be a bin of the expected axis and the count must be a multiple of
        ``3 * num_joints`` (``3 * num_joints * num_frames`` when given); otherwise ValueError. With
        ``strict=False`` (for free-running generation) wrong or missing tokens give NaN and the result has
        ``num_frames`` frames (default: as many as the tokens start).
        """
        ids = _token_ids(ids)
        _check_count(num_joints, "num_joints")
        if num_frames is not None:
            _check_count(num_frames, "num_frames")
        while ids and ids[0] in (self.pad_token_id, self.bos_token_id):
            ids = ids[1:]
        eots = [k for k, i in enumerate(ids) if i in self.eot_token_ids]
        if eots:
            ids = ids[: eots[0]]
        per_frame = 3 * int(num_joints)
        if strict:
            expected = None if num_frames is None else per_frame * num_frames
            if not ids or len(ids) % per_frame or (expected is not None and len(ids) != expected):
                raise ValueError(
                    f"{len(ids)} pose tokens do not form whole frames of {num_joints} joints x 3 axes"
                    + (f" ({num_frames} frames)" if num_frames is not None else "")
                )
        frames = num_frames if num_frames is not None else max(1, math.ceil(len(ids) / per_frame))
        slots = np.full(frames * per_frame, -1, dtype=np.int64)
        # Ids outside the vocabulary (negative, or beyond int64) are no bin of any axis: -1 marks them invalid.
        kept = ids[: slots.size]
        slots[: len(kept)] = [i if 0 <= i < len(self.encoder) else -1 for i in kept]
        axis = np.arange(slots.size) % 3
        bins = slots - self.bin_token_offset - axis * self.num_bins
        valid = (bins >= 0) & (bins < self.num_bins)
        if strict and not valid.all():
            k = int(np.argmin(valid))
            raise ValueError(f"token {k} (id {ids[k]}) is not a bin token of axis {AXES[axis[k]]}")
        low = np.asarray(self.coordinate_range)[axis, 0]
        coords = np.where(valid, low + (bins + 0.5) * self.bin_width[axis], np.nan)
        return coords.reshape(frames, int(num_joints), 3).astype(np.float32)

    def expected_pose(self, scores, num_joints: int, num_frames: int = 1) -> np.ndarray:
        """Coordinates (K, J, 3) in millimetres as the mean of each coordinate's predicted bin distribution.

        ``scores`` are the logits of the pose steps in output order (x, y, z per joint per frame), shaped
        ``(>= 3 * J * K, vocab_size)`` (the model's `sequence_scores` row after `<s>`, or generate()'s scores
        stacked); only step ``s``'s own axis bins count (softmax over them), whatever the other logits hold.
        The mean is the least-squares estimate under the model's distribution and is not limited to bin
        centres, so it removes the quantisation of `decode_pose` (up to half a bin per coordinate) and averages
        over neighbouring bins where the model is unsure.
        """
        _check_count(num_joints, "num_joints")
        _check_count(num_frames, "num_frames")
        if hasattr(scores, "detach"):  # torch tensors (the tokenizer does not import torch)
            scores = scores.detach().float().cpu().numpy()
        scores = np.asarray(scores, dtype=np.float64)
        steps = 3 * int(num_joints) * int(num_frames)
        if scores.ndim != 2 or scores.shape[0] < steps or scores.shape[1] != self.vocab_size:
            raise ValueError(f"scores must be ({steps}+ pose steps, vocab_size={self.vocab_size}) logits for "
                             f"{num_frames} frame(s) of {num_joints} joints, got shape {scores.shape}")
        axis = np.arange(steps) % 3
        columns = self.bin_token_offset + axis[:, None] * self.num_bins + np.arange(self.num_bins)
        logits = np.take_along_axis(scores[:steps], columns, axis=1)  # (steps, num_bins): each step's own axis
        if not np.isfinite(logits).any(axis=1).all() or np.isnan(logits).any() or np.isposinf(logits).any():
            raise ValueError("scores: each pose step needs finite logits over its axis's bins (no NaN or +inf)")
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        low = np.asarray(self.coordinate_range)[axis, :1]
        centres = low + (np.arange(self.num_bins) + 0.5) * self.bin_width[axis, None]  # (steps, num_bins) mm
        coords = (weights * centres).sum(axis=1) / weights.sum(axis=1)
        return coords.reshape(int(num_frames), int(num_joints), 3).astype(np.float32)


def _real_array(values, name: str) -> np.ndarray:
    """``values`` as float64; TypeError naming ``name`` for strings, objects, complex numbers and ragged lists."""
    if hasattr(values, "detach"):  # torch tensors (the tokenizer does not import torch)
        values = values.detach().cpu().numpy()
    array = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if array.dtype.kind == "c":
        raise TypeError(f"{name} must be real numbers, got complex values")
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a rectangular array of numbers ({error})") from None


def _check_count(value, name: str) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {type(value).__name__} {value!r:.40}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")


def _token_ids(ids) -> List[int]:
    """``ids`` (one id, a sequence, a numpy array or torch tensor of integer token ids) as a flat list of ints;
    TypeError for anything else (strings, floats, nested sequences), so bad input never decodes by accident."""
    if hasattr(ids, "tolist"):  # numpy arrays and scalars, torch tensors
        if getattr(ids, "ndim", 1) > 1:
            raise TypeError(f"token ids must be one sequence (1-D), got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    if isinstance(ids, (int, np.integer)) and not isinstance(ids, (bool, np.bool_)):
        return [int(ids)]
    if isinstance(ids, (str, bytes, dict, set)) or not isinstance(ids, Iterable):
        raise TypeError(f"token ids must be an integer or a sequence of integers, got {type(ids).__name__}")
    ids = list(ids)
    for i in ids:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"token ids must be integers, got {type(i).__name__} {i!r:.40}")
    return [int(i) for i in ids]


__all__ = ["UPSTokenizer", "label_token", "ordinal", "build_vocabulary"]
