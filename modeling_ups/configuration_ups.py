"""UPS model configuration, and the task and vocabulary spec every other module reads.

The spec (tasks, their shorthands, which task emits a pose, the end-of-task token closing each task, the
vocabulary layout and the early-prediction observation rule) lives here and only here: the tokenizer, feature
extractor, processor, pipeline, model and training code import it, so none of them writes a task index of its own.
"""

import math
from dataclasses import field

from transformers import PretrainedConfig

from .skeletons import MODEL_LAYOUTS, get_layout

# Task names, in task-id order. The order is part of the checkpoint format: task ids index the routing
# task embeddings and the decoder task embeddings.
UPS_TASKS = (
    "action_recognition_3d",
    "action_recognition_2d",
    "pose_estimation_3d",
    "early_action_prediction_3d",
)
# The one task whose output is a pose (coordinate bins); every other task's output is one action label.
POSE_ESTIMATION_TASK = "pose_estimation_3d"
# What users write: "action_recognition" is told 2D or 3D from the input; the others prefix exactly one task.
TASK_SHORTHANDS = ("action_recognition", "early_action_prediction", "pose_estimation")

# The vocabulary: [<pad>, <s>, <unk>] + labels + x-bins + y-bins + z-bins + end-of-task tokens (paper order
# EOT_AR, EOT_PE, EOT_AP).
SPECIAL_TOKENS = ("<pad>", "<s>", "<unk>")
EOT_TOKENS = ("<eot_ar>", "<eot_pe>", "<eot_ap>")
# Which end-of-task token closes each task's output (an index into EOT_TOKENS). 2D and 3D recognition share EOT_AR.
TASK_TO_EOT_INDEX = {
    "action_recognition_3d": 0,
    "action_recognition_2d": 0,
    "pose_estimation_3d": 1,
    "early_action_prediction_3d": 2,
}


def resolve_task(task: str, tasks=UPS_TASKS, is_2d: bool | None = None) -> str:
    """Full task name for ``task``, a full name of ``tasks`` or a shorthand that prefixes names.

    ``"action_recognition"`` becomes ``action_recognition_2d`` or ``_3d`` by ``is_2d`` (the input's dimensionality;
    when unknown, the prefix must be unambiguous); ``"pose_estimation"`` and ``"early_action_prediction"`` resolve to
    the only task they prefix.
    """
    if not isinstance(task, str):
        raise TypeError(f"task must be a task name (a string), got {type(task).__name__} {task!r:.40}")
    if task in tasks:
        return task
    matches = [t for t in tasks if t.startswith(task + "_")]
    if len(matches) > 1 and is_2d is not None:
        suffix = "_2d" if is_2d else "_3d"
        matches = [t for t in matches if t.endswith(suffix)] or matches
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ValueError(f"Unknown task {task!r}; known tasks: {list(tasks)} (or a shorthand prefix of one)")
    raise ValueError(f"Task {task!r} is ambiguous among {matches}; name one of them")


def task_eot_index(task: str) -> int:
    """Index into `EOT_TOKENS` of the end-of-task token of ``task`` (a full name or a shorthand: 2D and 3D
    recognition share theirs, so "action_recognition" needs no dimensionality)."""
    if not isinstance(task, str):
        resolve_task(task)  # raises the error that names the problem
    if task in TASK_TO_EOT_INDEX:
        return TASK_TO_EOT_INDEX[task]
    indices = {TASK_TO_EOT_INDEX[t] for t in UPS_TASKS if t.startswith(f"{task}_")}
    if len(indices) != 1:
        resolve_task(task)
    return indices.pop()


def task_emits_pose(task: str) -> bool:
    """Whether ``task`` (full name or shorthand) outputs a pose rather than one action label."""
    return task_eot_index(task) == TASK_TO_EOT_INDEX[POSE_ESTIMATION_TASK]


def observed_frames(num_frames: int, ratio: float) -> int:
    """Frames early action prediction observes of a ``num_frames`` clip at observation ``ratio``: the first
    ``ceil(ratio * T)``, at least 1."""
    if num_frames < 1:
        raise ValueError(f"observed_frames: num_frames must be >= 1, got {num_frames}")
    if not 0 < ratio <= 1:
        raise ValueError(f"observed_frames: ratio must lie in (0, 1], got {ratio}")
    # Round first: 0.1 * 3 * 10 = 3.0000000000000004 is 3 frames, not 4.
    return max(1, math.ceil(round(ratio * num_frames, 9)))


class UPSVocabularyLayout:
    """Token ids of the unified vocabulary, derived from ``num_label_tokens`` and ``num_bins`` (attributes of the
    class it is mixed into: `UPSConfig` and `UPSTokenizer`, so the two can never lay the ids out differently)."""

    @property
    def vocab_size(self) -> int:
        return len(SPECIAL_TOKENS) + self.num_label_tokens + 3 * self.num_bins + len(EOT_TOKENS)

    @property
    def label_token_offset(self) -> int:
        return len(SPECIAL_TOKENS)

    @property
    def label_token_ids(self) -> range:
        return range(self.label_token_offset, self.label_token_offset + self.num_label_tokens)

    @property
    def bin_token_offset(self) -> int:
        """Id of the first x-bin token; axis ``a`` bin ``b`` has id ``bin_token_offset + a * num_bins + b``."""
        return len(SPECIAL_TOKENS) + self.num_label_tokens

    @property
    def eot_token_ids(self) -> tuple:
        """(EOT_AR, EOT_PE, EOT_AP)."""
        start = self.bin_token_offset + 3 * self.num_bins
        return tuple(range(start, start + len(EOT_TOKENS)))

    def task_eot_token_id(self, task: str) -> int:
        """End-of-task token id of ``task`` (full name or shorthand such as ``"pose_estimation"``)."""
        return self.eot_token_ids[task_eot_index(task)]


# Options of ups <= 0.2 that no preset or recipe changed from these values, retired in 0.3: the graph network's
# normalisation is always per-task BatchNorm, the loss always averages per sample (docs/design.md).
_RETIRED_OPTIONS = {"norm_type": "task_batch", "loss_reduction": "sample"}


def _default_layouts():
    return [get_layout(name).to_dict() for name in MODEL_LAYOUTS]


class UPSConfig(UPSVocabularyLayout, PretrainedConfig):
    r"""
    Configuration of a [`UPSForPoseSequenceModeling`] model (Unified Pose Sequence Modeling, Foo et al., CVPR 2023).

    The unified vocabulary is laid out as
    ``[<pad>, <s>, <unk>] + num_label_tokens action labels + num_bins x-bins + num_bins y-bins + num_bins z-bins
    + [EOT_AR, EOT_PE, EOT_AP]``, i.e. the paper's ``n_cls + 3 * n_bins + 3`` entries after three special tokens.
    The id of every part is a property of the config (`label_token_offset`, `bin_token_offset`, `eot_token_ids`).

    Args:
        num_label_tokens (`int`, *optional*, defaults to 60):
            Number of action-label tokens ``n_cls`` (the union of all label vocabularies the model is trained on).
        num_bins (`int`, *optional*, defaults to 256):
            Quantisation bins per coordinate axis ``n_bins``. The coordinate range of each axis (a processor setting)
            divided by ``num_bins`` is the resolution of pose outputs.
        tasks (`list[str]`, *optional*, defaults to the four paper tasks):
            Task names; their order gives the task ids.
        layouts (`list[dict]`, *optional*, defaults to the six model layouts of `skeletons.MODEL_LAYOUTS`):
            Skeleton layouts the joint tokenizer knows, each ``{"name", "num_joints", "edges", "root"}``. Their order
            gives the layout ids (a list, because `config.json` sorts dict keys); each layout has its own graph
            adjacency and learned topology offset.
        pose_target_layouts (`dict[str, str]`, *optional*, defaults to `{}`):
            Layout that pose estimation outputs for an input layout that is lifted to another skeleton, e.g.
            `{"mpii16": "h36m17"}`: Stacked-Hourglass MPII-16 detections lifted to Human3.6M's 17 joints, as
            VideoPose3D trains on them. The model learns the mapping; no joint conversion is hand-made. Both names
            must be in `layouts`; an input layout not listed is lifted to itself.
        max_persons (`int`, *optional*, defaults to 2):
            Persons per clip. Each person is encoded separately; the decoder cross-attends to all persons' frame tokens.
        max_frames (`int`, *optional*, defaults to 300):
            Largest number of input frames (the frame budget). Longer inputs are rejected by the model; the feature
            extractor resamples them to this length beforehand.
        input_channels (`int`, *optional*, defaults to 3):
            Coordinates per joint fed to the model (2D input is padded with a zero Z, as in the paper).
        joint_input (`bool`, *optional*, defaults to `True`):
            Feed the joint tokenizer the coordinates themselves (the joint stream). `False` together with
            `root_relative_input=False` and one of `bone_input`, `motion_input`, `bone_motion_input` makes a model of
            that stream alone, as CTR-GCN's and pyskl's bone and motion models are, whose class scores are fused with a
            joint model's at test time (`examples/evaluate.py` with several `--model`).
        root_relative_input (`bool`, *optional*, defaults to `True`):
            Feed the joint tokenizer every joint's coordinates twice: as given (centred on the first frame's root, so
            they carry the body's trajectory) and relative to the same frame's root (the body's shape wherever it
            stands), as EfficientGCN's joint branch does. Graph convolutions only mix neighbouring joints, so without
            the second copy the network must carry the root's position across the whole graph to separate shape from
            trajectory (synthetic lifting with `decoder_token_dropout=0.5`: 107.7 instead of 151.5 mm MPJPE,
            docs/design.md).
        bone_input (`bool`, *optional*, defaults to `False`):
            Also feed every joint's bone: its coordinates minus its parent's in the layout's tree (rooted at the
            layout's first root joint; the root's bone is zero), the bone stream of CTR-GCN and InfoGCN fused at the
            input as EfficientGCN does.
        motion_input (`bool`, *optional*, defaults to `False`):
            Also feed every joint's motion: its displacement to the next frame (zero at the last frame), the motion
            stream of the same models, fused at the input.
        bone_motion_input (`bool`, *optional*, defaults to `False`):
            Also feed every bone's motion: its change to the next frame, the fourth stream CTR-GCN and InfoGCN train a
            model of. With the three other streams off it makes a bone-motion model for score fusion.
        tokenizer_channels (`list[int]`, *optional*, defaults to `[64, 64, 64]`):
            Output channels of the three TCN-GCN layers of the joint tokenizer; the last is the joint-token width ``d``.
        tokenizer_temporal_strides (`list[int]`, *optional*, defaults to `[1, 2, 2]`):
            Temporal stride of each TCN-GCN layer; their product is the frame downsampling before the encoder.
        temporal_kernel_size (`int`, *optional*, defaults to 5):
            Kernel size of the temporal convolutions.
        topology_reduction (`int`, *optional*, defaults to 8):
            Channel reduction of the channel-wise topology refinement (CTR-GC) branch.
        encoder_layers (`int`, *optional*, defaults to 3):
            Encoder layers ``L``.
        encoder_blocks_per_layer (`int`, *optional*, defaults to 2):
            Parallel SEM-TEM blocks ``H`` per encoder layer; dynamic routing picks one per layer and task.
        encoder_attention_heads (`int`, *optional*, defaults to 8):
            Heads of the temporal (frame-token) self-attention.
        encoder_attention_dim (`int`, *optional*, defaults to 256):
            Width the frame tokens (``J * d`` wide) are projected to inside the temporal attention.
        encoder_ffn_dim (`int`, *optional*, defaults to 512):
            Hidden width of the temporal module's 2-layer MLP.
        routing_embedding_dim (`int`, *optional*, defaults to 256):
            Size ``q`` of the task and block embeddings whose dot product scores the blocks.
        gumbel_temperature (`float`, *optional*, defaults to 1.0):
            Gumbel-softmax temperature used while training (annealed by the training recipe).
        routing_train_all_blocks (`bool`, *optional*, defaults to `True`):
            While training, run every block of a layer on every sample and weight them by the straight-through
            one-hot gates, so every block's gate gets a gradient (the usual Gumbel-softmax estimator). `False` runs
            each sample through its sampled block only, as inference does, and the gradient reaches the routing
            scores through that block's gate alone: the encoder layers' training cost is divided by
            `encoder_blocks_per_layer` (docs/results.md measures both).
        routing_sharpen_draws (`bool`, *optional*, defaults to `False`):
            Draw each training route from the softmax of the routing scores at the current Gumbel temperature
            instead of at temperature 1. The usual hard Gumbel-softmax draws ``argmax(scores + noise)`` whatever the
            temperature, so a layer whose scores are still undecided at the end of training (say 60:40) trains
            its other block on 40% of the samples while inference always takes the first; sharpened, the draws
            converge to the inference path as the recipe anneals the temperature to 0.1 (60:40 becomes 98:2).
        routing_skip_probability (`float`, *optional*, defaults to 0.0):
            With `routing_train_all_blocks`, a block that no sample of the batch is at least this likely to draw
            (see `routing_sharpen_draws`) and that no sample drew in this step is not run. Once a route has settled
            on one block per layer (a single-task recipe's does early in training, docs/results.md), the other
            block's outputs are multiplied by a gate of 0 on every sample and its gate's gradient is scaled by about
            ``p * (1 - p)``, so running it costs a full block for a gradient that barely moves the routing; a block
            any sample drew still runs on every sample, so the forward pass is the usual estimator's. 0 runs every
            block on every sample throughout.
        d_model (`int`, *optional*, defaults to 256):
            Decoder width (and width of the vocabulary embedding table).
        decoder_layers (`int`, *optional*, defaults to 3):
            Transformer decoder layers.
        decoder_attention_heads (`int`, *optional*, defaults to 8):
            Heads of decoder self- and cross-attention.
        decoder_ffn_dim (`int`, *optional*, defaults to 1024):
            Decoder feed-forward width.
        max_target_positions (`int`, *optional*, defaults to 128):
            Position embeddings of the decoder: its longest sequence (start token included), or, with several pose
            target frames, the longest frame block's. Pose estimation needs ``3 * J + 2`` positions.
        pose_estimation_target_frames (`int`, *optional*, defaults to 1):
            Frames ``K`` that pose estimation emits per input clip: 1 means the centre frame (VideoPose3D's
            protocol); larger values emit ``K`` consecutive frames around the centre, as ``K`` independent decoder
            blocks over one encoder pass (`UPSFrameBlocks`): `generate()` decodes them side by side, so lifting every
            frame of a video takes ``1/K`` of the windows and ``3 * J`` decoder steps per window.
        text_embedding_dim (`int`, *optional*, defaults to 768):
            Width of the text-encoder features the vocabulary table is initialised from (768 for RoBERTa-base).
        text_encoder_name_or_path (`str`, *optional*, defaults to `"FacebookAI/roberta-base"`):
            Text encoder whose prompt features initialise the vocabulary embeddings.
        dropout (`float`, *optional*, defaults to 0.1): dropout of residual branches.
        attention_dropout (`float`, *optional*, defaults to 0.0): dropout on attention probabilities.
        init_std (`float`, *optional*, defaults to 0.02): std of the normal initialiser.
        bin_smoothing_sigma (`float`, *optional*, defaults to 0.0):
            Width (in bins) of the Gaussian soft target of coordinate tokens in the loss; 0 is the paper's one-hot
            NLL. Neighbouring bins are nearly right, so a soft target makes the bin classification ordinal.
        label_smoothing (`float`, *optional*, defaults to 0.0):
            Share of an action-label target spread uniformly over all label tokens in the loss (label smoothing, as
            pyskl's recognition heads use); 0 is the paper's one-hot NLL.
        coordinate_regression_weight (`float`, *optional*, defaults to 0.0):
            Weight of a regression term added to each coordinate token's loss: the distance, in bins, between the
            mean of the token's predicted bin distribution over its axis and its target bin (integral regression's
            L1 loss on a soft-argmax). It trains the reading `pose_decoding="expectation"` makes at test time,
            which the NLL alone does not: the NLL rewards mass on the right bin, this term penalises mass far from
            it. 0 is the paper's NLL alone.
        decoder_token_dropout (`float`, *optional*, defaults to 0.0):
            While training, each decoder input token after the start token is replaced by `<unk>` with this
            probability. Teacher forcing lets a pose decoder predict a coordinate from the ground-truth coordinates
            before it and ignore the input; hiding some of them makes it read the encoder, which is all it has at
            the first generated token (docs/design.md).
        parallel_decoding (`bool`, *optional*, defaults to `False`):
            The decoder never reads the tokens it emits: in training and in generation every decoder input after
            the start token is `<unk>`, so each output token is predicted from the encoder, the task and its
            position alone, and greedy `generate()` computes a whole output in one decoder call instead of one per
            token (`3 * J` calls per lifted frame). Trades the autoregressive dependence between coordinates for
            lifting speed (docs/design.md); `False` is the paper's autoregressive decoder. `decoder_token_dropout`
            has no effect then: every token is hidden already.
        tie_word_embeddings (`bool`, *optional*, defaults to `True`):
            Tie the output projection to the vocabulary embedding table.
    """

    model_type = "ups"
    # The decoder cache under its name since transformers 5.24 and before.
    keys_to_ignore_at_inference = ["cache", "past_key_values"]
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "decoder_attention_heads",
        "num_hidden_layers": "decoder_layers",
    }

    num_label_tokens: int = 60
    num_bins: int = 256
    tasks: list = field(default_factory=lambda: list(UPS_TASKS))
    layouts: list = field(default_factory=_default_layouts)
    pose_target_layouts: dict = field(default_factory=dict)
    max_persons: int = 2
    max_frames: int = 300
    input_channels: int = 3
    joint_input: bool = True
    root_relative_input: bool = True
    bone_input: bool = False
    motion_input: bool = False
    bone_motion_input: bool = False
    tokenizer_channels: list = field(default_factory=lambda: [64, 64, 64])
    tokenizer_temporal_strides: list = field(default_factory=lambda: [1, 2, 2])
    temporal_kernel_size: int = 5
    topology_reduction: int = 8
    encoder_layers: int = 3
    encoder_blocks_per_layer: int = 2
    encoder_attention_heads: int = 8
    encoder_attention_dim: int = 256
    encoder_ffn_dim: int = 512
    routing_embedding_dim: int = 256
    gumbel_temperature: float = 1.0
    routing_train_all_blocks: bool = True
    routing_sharpen_draws: bool = False
    routing_skip_probability: float = 0.0
    d_model: int = 256
    decoder_layers: int = 3
    decoder_attention_heads: int = 8
    decoder_ffn_dim: int = 1024
    max_target_positions: int = 128
    pose_estimation_target_frames: int = 1
    text_embedding_dim: int = 768
    text_encoder_name_or_path: str = "FacebookAI/roberta-base"
    dropout: float = 0.1
    attention_dropout: float = 0.0
    init_std: float = 0.02
    bin_smoothing_sigma: float = 0.0
    label_smoothing: float = 0.0
    coordinate_regression_weight: float = 0.0
    decoder_token_dropout: float = 0.0
    parallel_decoding: bool = False
    use_cache: bool = True
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    unk_token_id: int | None = 2
    decoder_start_token_id: int | None = 1
    eos_token_id: int | list | None = None

    def __post_init__(self, **kwargs):
        if len(self.tokenizer_channels) != len(self.tokenizer_temporal_strides):
            raise ValueError(
                "tokenizer_channels and tokenizer_temporal_strides must have one entry per TCN-GCN layer, got "
                f"{len(self.tokenizer_channels)} and {len(self.tokenizer_temporal_strides)}"
            )
        if self.encoder_attention_dim % self.encoder_attention_heads:
            raise ValueError("encoder_attention_dim must be divisible by encoder_attention_heads")
        if self.d_model % self.decoder_attention_heads:
            raise ValueError("d_model must be divisible by decoder_attention_heads")
        for name, only_value in _RETIRED_OPTIONS.items():
            # Configs saved before ups 0.3 name these options; the value every preset used is the only behaviour.
            value = kwargs.pop(name, only_value)
            if value != only_value:
                raise ValueError(
                    f"{name}={value!r} is no longer supported (ups 0.3 keeps only {name}={only_value!r}, the value of "
                    "every preset and recipe); docs/design.md records why"
                )
        if not self.input_streams:
            raise ValueError(
                "the joint tokenizer needs at least one input stream: set joint_input, root_relative_input, "
                "bone_input, motion_input or bone_motion_input"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("bin_smoothing_sigma", "coordinate_regression_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0.0:  # NaN fails >=
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not 0.0 <= self.routing_skip_probability < 1.0:
            raise ValueError(f"routing_skip_probability must be in [0, 1), got {self.routing_skip_probability}")
        if not 0.0 <= self.decoder_token_dropout <= 1.0:
            raise ValueError(f"decoder_token_dropout must be in [0, 1], got {self.decoder_token_dropout}")
        unknown = [t for t in self.tasks if t not in TASK_TO_EOT_INDEX]
        if unknown:
            raise ValueError(f"Unknown tasks {unknown}; UPS knows {list(UPS_TASKS)}")
        self.layouts = [
            {"name": str(v["name"]), "num_joints": int(v["num_joints"]),
             "edges": [list(map(int, e)) for e in v["edges"]], "root": [int(r) for r in v["root"]]}
            for v in self.layouts
        ]
        if len({v["name"] for v in self.layouts}) != len(self.layouts):
            raise ValueError(f"Duplicate layout names in {self.layout_names}")
        self.pose_target_layouts = {str(k): str(v) for k, v in (self.pose_target_layouts or {}).items()}
        unknown = sorted({*self.pose_target_layouts, *self.pose_target_layouts.values()} - set(self.layout_names))
        if unknown:
            raise ValueError(f"pose_target_layouts names layouts {unknown} that are not in layouts {self.layout_names}")
        # Every frame block of a pose row reads the positions of a one-frame sequence (UPSFrameBlocks).
        needed = 3 * self.max_joints + 2
        if self.max_target_positions < needed:
            raise ValueError(
                f"max_target_positions={self.max_target_positions} is too small for pose estimation of "
                f"{self.max_joints} joints per frame: need {needed}"
            )
        # Generation stops at whichever end-of-task token the task emits.
        self.eos_token_id = list(self.eot_token_ids)
        super().__post_init__(**kwargs)

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        # The EOS ids are derived from the vocabulary sizes: keep them in step when those are changed after
        # construction (e.g. `UPSConfig.from_pretrained(preset, num_label_tokens=...)` sets attributes late).
        if name in ("num_label_tokens", "num_bins") and {"num_label_tokens", "num_bins"} <= self.__dict__.keys():
            super().__setattr__("eos_token_id", list(self.eot_token_ids))

    def task_id(self, task: str) -> int:
        if task not in self.tasks:
            raise ValueError(f"Unknown task {task!r}; this model knows {list(self.tasks)}")
        return list(self.tasks).index(task)

    @property
    def layout_names(self) -> list:
        return [v["name"] for v in self.layouts]

    def layout_id(self, layout: str) -> int:
        names = self.layout_names
        name = layout if layout in names else get_layout(layout).name
        if name not in names:
            raise ValueError(f"Unknown layout {layout!r}; this model knows {names}")
        return names.index(name)

    def pose_target_layout(self, layout: str) -> str:
        """Name of the layout pose estimation outputs for input in ``layout`` (a model layout name)."""
        return self.pose_target_layouts.get(layout, layout)

    @property
    def pose_target_num_joints(self) -> list:
        """Joints pose estimation outputs per frame, for each layout id of the input."""
        num_joints = {v["name"]: v["num_joints"] for v in self.layouts}
        return [num_joints[self.pose_target_layout(v["name"])] for v in self.layouts]

    @property
    def input_streams(self) -> list:
        """The joint tokenizer's input streams this config enables, in the order they are stacked along channels
        (`UPSSkeletonGraph.input_streams`); the displacement streams come last."""
        enabled = {"joint": self.joint_input, "root_relative": self.root_relative_input, "bone": self.bone_input,
                   "motion": self.motion_input, "bone_motion": self.bone_motion_input}
        return [name for name, on in enabled.items() if on]

    @property
    def tokenizer_input_channels(self) -> int:
        """Channels of the joint tokenizer's input: `input_channels` per enabled stream (`input_streams`)."""
        return self.input_channels * len(self.input_streams)

    @property
    def displacement_input_channels(self) -> int:
        """The last channels of the joint tokenizer's input that hold frame-to-frame changes (the motion and bone-motion
        streams), which the tokenizer normalises to the scale of the other streams."""
        return self.input_channels * (int(self.motion_input) + int(self.bone_motion_input))

    @property
    def max_joints(self) -> int:
        return max(v["num_joints"] for v in self.layouts)

    @property
    def temporal_downsampling(self) -> int:
        factor = 1
        for s in self.tokenizer_temporal_strides:
            factor *= int(s)
        return factor


__all__ = [
    "UPSConfig", "UPSVocabularyLayout", "UPS_TASKS", "POSE_ESTIMATION_TASK", "TASK_SHORTHANDS", "SPECIAL_TOKENS",
    "EOT_TOKENS", "TASK_TO_EOT_INDEX", "resolve_task", "task_eot_index", "task_emits_pose", "observed_frames",
]
