"""PyTorch UPS model: Unified Pose Sequence Modeling (Foo et al., CVPR 2023).

One encoder-decoder serves every pose task. The **joint tokenizer** (CTR-GCN style TCN-GCN layers) turns each
person's skeleton sequence into joint tokens; the **encoder** stacks ``L`` layers of ``H`` parallel SEM-TEM blocks
(spatial graph convolutions, then temporal self-attention over frame tokens) and a **dynamic router** picks one block
per layer from the task; the **decoder** is a standard transformer decoder emitting one token sequence over the
unified vocabulary (action labels, quantised x/y/z bins, end-of-task tokens).

Shapes used in comments: ``B`` clips, ``M`` persons, ``T`` frames, ``J`` joints of the input, ``V = config.max_joints``
(joints after internal padding), ``N = B * M`` person rows, ``C``/``d`` channels, ``T'`` frames after the tokenizer's
temporal downsampling, ``K = 3`` adjacency subsets, ``L`` layers, ``H`` blocks per layer.

Padding invariant: features of padded frames, padded joints and absent persons are exactly zero after every layer
and temporal statistics are masked means, so (in eval mode) a padded sample gives the outputs of the unpadded one.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.generation import GenerateEncoderDecoderOutput, LogitsProcessor, LogitsProcessorList
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, logging

from .configuration_ups import TASK_TO_EOT_INDEX, UPSConfig

logger = logging.get_logger(__name__)

NUM_ADJACENCY_SUBSETS = 3  # identity, inward (child -> parent), outward (parent -> child)
_POSE_EOT_INDEX = 1  # tasks closed by EOT_PE emit coordinates; the others emit one label


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------

# transformers 5.24 renamed the decoder cache from `past_key_values` to `cache` (output field, forward keyword and
# `generate()`'s model kwarg). The library's own output classes carry the installed spelling, so UPS outputs extend
# them and are built and read through this name; every forward accepts the cache under both names.
CACHE_FIELD = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"


def _resolve_cache(cache: Cache | None, past_key_values: Cache | None) -> Cache | None:
    """The decoder cache passed under either name (`cache` since transformers 5.24, `past_key_values` before)."""
    if cache is not None and past_key_values is not None:
        raise ValueError("Pass the decoder cache as `cache` or as `past_key_values`, not both")
    return cache if cache is not None else past_key_values


def _warn_no_attention_weights(config) -> None:
    """As in-tree models do: attention implementations other than eager (sdpa, flash) compute no weights, so the
    attentions asked for with `output_attentions=True` stay empty tuples."""
    logger.warning_once(
        f"`{config._attn_implementation}` attention does not support `output_attentions=True`: the attentions are "
        "empty. Load the model with `attn_implementation=\"eager\"` (or call `set_attn_implementation(\"eager\")`) "
        "to get them."
    )


@dataclass
class UPSEncoderOutput(BaseModelOutput):
    r"""
    Output of [`UPSEncoder`]: the memory the decoder cross-attends to.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_persons * num_tokens, d_model)`):
            Frame tokens of all persons, person after person (``num_tokens = ceil(T / config.temporal_downsampling)``).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The frame tokens entering the first encoder layer and leaving every layer, each of shape
            `(batch_size, num_persons * num_tokens, max_joints * width)` (a token is one frame's joint features,
            as the temporal self-attention sees it; absent persons are zero).
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Temporal self-attention weights of the block each sample was routed to, one per encoder layer, each of
            shape `(batch_size, num_persons, encoder_attention_heads, num_tokens, num_tokens)` (absent persons zero).
            Eager attention only: other implementations compute no weights and return an empty tuple.
        attention_mask (`torch.LongTensor` of shape `(batch_size, num_persons * num_tokens)`):
            1 for tokens of real frames of present persons, 0 otherwise (the decoder's cross-attention mask).
        router_decisions (`torch.LongTensor` of shape `(batch_size, encoder_layers)`):
            Index of the SEM-TEM block each sample used in each encoder layer.
        router_probs (`torch.FloatTensor` of shape `(batch_size, encoder_layers, encoder_blocks_per_layer)`):
            Softmax of the routing scores (without Gumbel noise).
        task_ids (`torch.LongTensor` of shape `(batch_size,)`):
            The task of each sample (kept so that decoding steps can read it).
        layout_ids (`torch.LongTensor` of shape `(batch_size,)`):
            The resolved skeleton layout of each sample.
    """

    attention_mask: torch.LongTensor | None = None
    router_decisions: torch.LongTensor | None = None
    router_probs: torch.FloatTensor | None = None
    task_ids: torch.LongTensor | None = None
    layout_ids: torch.LongTensor | None = None

    @classmethod
    def from_tuple(cls, values: tuple) -> "UPSEncoderOutput":
        """Rebuild from `to_tuple()` (`return_dict=False`): the first entry is the memory and the last five are the
        always-present mask, routing and id fields; optional hidden states / attentions in between are dropped."""
        if len(values) < 6:
            raise ValueError(
                f"encoder_outputs as a tuple must be UPSEncoderOutput.to_tuple() (at least 6 entries), got {len(values)}"
            )
        mask, decisions, probs, task_ids, layout_ids = values[-5:]
        return cls(
            last_hidden_state=values[0], attention_mask=mask, router_decisions=decisions, router_probs=probs,
            task_ids=task_ids, layout_ids=layout_ids,
        )


@dataclass
class UPSSeq2SeqModelOutput(Seq2SeqModelOutput):
    r"""
    Output of [`UPSModel`]: [`~modeling_outputs.Seq2SeqModelOutput`] (decoder states, cache, decoder and encoder
    hidden states and attentions) plus the encoder memory's mask and the routing.

    Args:
        encoder_attention_mask (`torch.LongTensor` of shape `(batch_size, num_persons * num_tokens)`):
            mask of `encoder_last_hidden_state`.
        router_decisions / router_probs: see [`UPSEncoderOutput`].
    """

    encoder_attention_mask: torch.LongTensor | None = None
    router_decisions: torch.LongTensor | None = None
    router_probs: torch.FloatTensor | None = None


@dataclass
class UPSSeq2SeqLMOutput(Seq2SeqLMOutput):
    r"""
    Output of [`UPSForPoseSequenceModeling`]: [`~modeling_outputs.Seq2SeqLMOutput`] (loss, next-token logits over the
    unified vocabulary, cache, hidden states and attentions) plus:

    Args:
        encoder_attention_mask (`torch.LongTensor` of shape `(batch_size, num_persons * num_tokens)`, *optional*):
            mask of `encoder_last_hidden_state`.
        router_decisions (`torch.LongTensor` of shape `(batch_size, encoder_layers)`, *optional*):
            returned when `output_router_decisions=True`.
        router_probs (`torch.FloatTensor` of shape `(batch_size, encoder_layers, encoder_blocks_per_layer)`,
            *optional*): returned when `output_router_decisions=True`.
        task_losses (`dict[str, torch.FloatTensor]`, *optional*, returned when `labels` is given):
            detached loss of each task present in the batch, reduced like `loss`.
    """

    encoder_attention_mask: torch.LongTensor | None = None
    router_decisions: torch.LongTensor | None = None
    router_probs: torch.FloatTensor | None = None
    task_losses: dict | None = None


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from targets: prepend the start token, drop the last target, and turn -100 into `<pad>`."""
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention. q/k/v are (batch, heads, length, head_dim); returns (batch, length, heads, head_dim)."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def _additive_key_mask(key_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, keys) 0/1 mask -> (batch, 1, 1, keys) additive mask (0 or finfo.min, never -inf, so a fully masked
    row gives a uniform average of zeros instead of NaN)."""
    bias = torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device)
    bias = bias.masked_fill(~key_mask.bool(), torch.finfo(dtype).min)
    return bias[:, None, None, :]


def _normalised_adjacency_subsets(num_joints: int, edges, max_joints: int) -> torch.Tensor:
    """Identity, inward and outward adjacency of one layout, shape (3, max_joints, max_joints).

    Aggregation is ``out[u] = sum_v A[u, v] x[v]``. Edges are (child, parent) pairs, so the inward subset carries each
    child's features to its parent and the outward subset the reverse. Each column is divided by its sum (a joint's
    message is shared among its receivers), the normalisation of ST-GCN's spatial partitioning. Rows and columns of
    padded joints (``>= num_joints``) are zero.
    """
    identity = torch.zeros(max_joints, max_joints)
    identity[:num_joints, :num_joints] = torch.eye(num_joints)
    inward = torch.zeros(max_joints, max_joints)
    for child, parent in edges:
        inward[parent, child] = 1.0
    outward = inward.t().clone()

    def column_normalise(a):
        degree = a.sum(0, keepdim=True)
        return torch.where(degree > 0, a / degree.clamp(min=1e-12), torch.zeros_like(a))

    return torch.stack([identity, column_normalise(inward), column_normalise(outward)])


class _RowContext:
    """Per-row (person) masks and graph of one temporal resolution, shared by the layers that run at it.

    Args:
        frame_mask (`torch.Tensor` of shape `(N, T)`): 1 for real frames of present persons.
        joint_mask (`torch.Tensor` of shape `(N, V)`): 1 for joints of the row's layout.
        adjacency (`torch.Tensor` of shape `(N, K, V, V)`): the row's normalised adjacency subsets.
        layout_ids (`torch.Tensor` of shape `(N,)`): the row's layout (selects the learned topology offsets).
        task_ids (`torch.Tensor` of shape `(N,)`): the row's task (selects task-specific normalisation statistics).
    """

    def __init__(self, frame_mask, joint_mask, adjacency, layout_ids, task_ids):
        self.frame_mask = frame_mask
        self.joint_mask = joint_mask
        self.adjacency = adjacency
        self.layout_ids = layout_ids
        self.task_ids = task_ids
        # (N, 1, T, V): multiplying by it zeroes padded frames and padded joints.
        self.feature_mask = (frame_mask[:, :, None] * joint_mask[:, None, :])[:, None]
        self.frame_count = frame_mask.sum(1).clamp(min=1.0)

    def downsample(self, stride: int) -> "_RowContext":
        # With an odd kernel and padding (k - 1) // 2, output frame t is centred on input frame t * stride.
        if stride == 1:
            return self
        return _RowContext(self.frame_mask[:, ::stride], self.joint_mask, self.adjacency, self.layout_ids, self.task_ids)

    def select(self, rows: torch.Tensor) -> "_RowContext":
        return _RowContext(
            self.frame_mask[rows], self.joint_mask[rows], self.adjacency[rows], self.layout_ids[rows],
            self.task_ids[rows],
        )


# ----------------------------------------------------------------------------------------------------------------
# Joint tokenizer and spatial modules
# ----------------------------------------------------------------------------------------------------------------


class UPSSkeletonGraph(nn.Module):
    """Adjacency subsets, joint masks and root weights of every layout the config knows, padded to
    `config.max_joints`.

    All are non-persistent buffers rebuilt from the config (they are not learned and not saved); the learned part of
    the graph is the per-layout topology offset of every [`UPSGraphConvolution`].
    """

    def __init__(self, config: UPSConfig):
        super().__init__()
        self.layouts = [dict(layout) for layout in config.layouts]
        self.max_joints = config.max_joints
        adjacency, joint_mask, root_weights = self.compute_buffers()
        self.register_buffer("adjacency", adjacency, persistent=False)  # (num_layouts, K, V, V)
        self.register_buffer("joint_mask", joint_mask, persistent=False)  # (num_layouts, V)
        self.register_buffer("root_weights", root_weights, persistent=False)  # (num_layouts, V)

    def compute_buffers(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        adjacency = torch.stack(
            [_normalised_adjacency_subsets(v["num_joints"], v["edges"], self.max_joints) for v in self.layouts]
        )
        # In the default dtype, like the other buffers (from_pretrained(dtype=...) builds them under that dtype).
        joint_mask = torch.stack(
            [(torch.arange(self.max_joints) < v["num_joints"]).to(torch.get_default_dtype()) for v in self.layouts]
        )
        # The root is the mean of the layout's root joints (one joint, or both hips where there is no pelvis).
        root_weights = torch.zeros(len(self.layouts), self.max_joints)
        for i, v in enumerate(self.layouts):
            root_weights[i, v["root"]] = 1.0 / len(v["root"])
        return adjacency, joint_mask, root_weights

    def root_relative(self, coordinates: torch.Tensor, layout_ids: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V) coordinates minus their frame's root (the mean of the layout's root joints). Undetected
        joints (all coordinates zero: padding, or keypoints a 2D detector missed) stay zero instead of becoming minus
        the root. A root joint cannot be told missing by its zeros: the processor centres every clip on the root of
        its first frame, which is therefore exactly zero there. So a frame whose root the detector missed keeps its
        coordinates as they are, which is also what they are relative to the first frame's root."""
        weights = self.root_weights[layout_ids].to(coordinates.dtype)
        root = torch.einsum("nctv,nv->nct", coordinates, weights)
        detected = coordinates.ne(0).any(1, keepdim=True)
        return (coordinates - root[..., None]) * detected


class UPSGraphConvolution(nn.Module):
    r"""
    Channel-wise topology refinement graph convolution (CTR-GC; Chen et al., ICCV 2021), written from the paper.

    For each adjacency subset ``k`` it infers a channel-specific topology from the clip: two linear maps reduce the
    time-averaged joint features to ``R`` channels, ``tanh(q_u - k_v)`` relates every joint pair, and a linear map
    lifts the relations to the output channels. The refinement, scaled by the learnable scalar ``alpha`` (zero at
    initialisation, so training starts from the plain graph), is added to the layout's adjacency plus its learned
    offset. Joint features, mapped to the output channels per subset, are then aggregated with the per-channel
    topology and summed over subsets.

    Inputs are (N, C_in, T, V), zero at padded frames/joints; outputs are (N, C_out, T, V).
    """

    def __init__(self, config: UPSConfig, in_channels: int, out_channels: int):
        super().__init__()
        num_subsets = NUM_ADJACENCY_SUBSETS
        relation_channels = max(in_channels // config.topology_reduction, 8)
        self.num_subsets = num_subsets
        self.relation_channels = relation_channels
        self.out_channels = out_channels
        # The 1x1 convolutions of the relation branch act on time-averaged features (linear maps commute with the
        # mean), so they are linear layers over (N, V, C).
        self.relation_query = nn.Linear(in_channels, num_subsets * relation_channels)
        self.relation_key = nn.Linear(in_channels, num_subsets * relation_channels)
        self.relation_lift = nn.Conv2d(
            num_subsets * relation_channels, num_subsets * out_channels, kernel_size=1, groups=num_subsets
        )
        self.value = nn.Conv2d(in_channels, num_subsets * out_channels, kernel_size=1)
        self.alpha = nn.Parameter(torch.zeros(1))
        num_layouts, max_joints = len(config.layouts), config.max_joints
        self.topology_offset = nn.Parameter(torch.zeros(num_layouts, num_subsets, max_joints, max_joints))

    def forward(self, hidden_states: torch.Tensor, context: _RowContext) -> torch.Tensor:
        n, _, t, v = hidden_states.shape
        k, r, c_out = self.num_subsets, self.relation_channels, self.out_channels

        # Masked temporal mean (padded frames are zero), (N, V, C_in).
        mean = (hidden_states * context.frame_mask[:, None, :, None]).sum(2) / context.frame_count[:, None, None]
        mean = mean.transpose(1, 2)
        query = self.relation_query(mean).view(n, v, k, r).permute(0, 2, 3, 1)  # (N, K, R, V)
        key = self.relation_key(mean).view(n, v, k, r).permute(0, 2, 3, 1)
        relation = torch.tanh(query.unsqueeze(-1) - key.unsqueeze(-2))  # (N, K, R, U, V)
        refinement = self.relation_lift(relation.reshape(n, k * r, v, v)).view(n, k, c_out, v, v)

        graph = context.adjacency + self.topology_offset[context.layout_ids]  # (N, K, V, V)
        topology = refinement * self.alpha + graph.unsqueeze(2)  # (N, K, C_out, U, V)
        # Padded joints send nothing (the value branch has a bias, so their values are not zero).
        topology = topology * context.joint_mask[:, None, None, None, :]

        values = self.value(hidden_states).view(n, k, c_out, t, v)
        # out[n, c, t, u] = sum_{k, v} topology[n, k, c, u, v] * values[n, k, c, t, v], as one batched matmul.
        values = values.permute(0, 2, 3, 1, 4).reshape(n, c_out, t, k * v)
        topology = topology.permute(0, 2, 1, 4, 3).reshape(n, c_out, k * v, v)
        return torch.matmul(values, topology)


class UPSTaskBatchNorm(nn.Module):
    """BatchNorm over (N, C, T, V) maps with one set of running statistics per task (task-specific BN).

    Training normalises with the batch's statistics, as BatchNorm does, and updates the running statistics of each
    task in the batch from that task's rows. Inference normalises every row with its own task's running statistics.
    Plain BatchNorm would average the running statistics over tasks whose inputs differ (2D with zero depth, 3D)
    while each single-task training batch (the paper's rotation) is normalised with its own statistics: measured on
    the synthetic demo, that mismatch halved inference accuracy (3D recognition 22% vs 46% top-1).
    """

    def __init__(self, num_tasks: int, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(num_tasks, channels))
        self.register_buffer("running_var", torch.ones(num_tasks, channels))

    def forward(self, hidden_states: torch.Tensor, context: "_RowContext") -> torch.Tensor:
        if self.training:
            mean = hidden_states.mean((0, 2, 3))
            var = hidden_states.var((0, 2, 3), unbiased=False)
            with torch.no_grad():
                for task in context.task_ids.unique().tolist():
                    rows = hidden_states[context.task_ids == task].detach()
                    count = rows.numel() // rows.shape[1]
                    task_var = rows.var((0, 2, 3), unbiased=False) * count / max(count - 1, 1)
                    self.running_mean[task].lerp_(rows.mean((0, 2, 3)), self.momentum)
                    self.running_var[task].lerp_(task_var, self.momentum)
            mean, var = mean[None, :, None, None], var[None, :, None, None]
        else:
            mean = self.running_mean[context.task_ids][:, :, None, None]
            var = self.running_var[context.task_ids][:, :, None, None]
        normed = (hidden_states - mean) * torch.rsqrt(var + self.eps)
        return normed * self.weight[:, None, None] + self.bias[:, None, None]


class UPSChannelNorm(nn.Module):
    """LayerNorm over the channels of every (frame, joint) position of a (N, C, T, V) map: no batch statistics,
    identical in training and inference, positions independent (padding cannot leak)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, hidden_states: torch.Tensor, context: "_RowContext" = None) -> torch.Tensor:
        mean = hidden_states.mean(1, keepdim=True)
        var = hidden_states.var(1, unbiased=False, keepdim=True)
        normed = (hidden_states - mean) * torch.rsqrt(var + self.eps)
        return normed * self.weight[:, None, None] + self.bias[:, None, None]


class UPSBatchNorm(nn.BatchNorm2d):
    """Plain BatchNorm (CTR-GCN's), with the norms' common `(hidden_states, context)` signature."""

    def forward(self, hidden_states: torch.Tensor, context: "_RowContext" = None) -> torch.Tensor:
        return super().forward(hidden_states)


def _feature_map_norm(config: UPSConfig, channels: int) -> nn.Module:
    """The normalisation of the graph network's (N, C, T, V) maps, chosen by `config.norm_type`."""
    if config.norm_type == "task_batch":
        return UPSTaskBatchNorm(len(config.tasks), channels)
    return UPSChannelNorm(channels) if config.norm_type == "layer" else UPSBatchNorm(channels)


class UPSConvNorm(nn.Module):
    """1x1 (optionally strided) convolution then normalisation: the projection of a residual branch."""

    def __init__(self, config: UPSConfig, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1))
        self.norm = _feature_map_norm(config, out_channels)

    def forward(self, hidden_states: torch.Tensor, context: "_RowContext") -> torch.Tensor:
        return self.norm(self.conv(hidden_states), context)


class UPSGraphBlock(nn.Module):
    """Graph convolution, normalisation, residual, ReLU; output masked. One spatial unit of SEM and of the tokenizer."""

    def __init__(self, config: UPSConfig, in_channels: int, out_channels: int):
        super().__init__()
        self.graph_conv = UPSGraphConvolution(config, in_channels, out_channels)
        self.norm = _feature_map_norm(config, out_channels)
        self.residual = None if in_channels == out_channels else UPSConvNorm(config, in_channels, out_channels)

    def forward(self, hidden_states: torch.Tensor, context: _RowContext) -> torch.Tensor:
        residual = hidden_states if self.residual is None else self.residual(hidden_states, context)
        out = self.norm(self.graph_conv(hidden_states, context), context) + residual
        return F.relu(out) * context.feature_mask


class UPSTokenizerLayer(nn.Module):
    """TCN-GCN layer of the joint tokenizer: graph block, then a strided temporal convolution with normalisation, a
    residual branch and ReLU. Input (N, C_in, T, V), output (N, C_out, ceil(T / stride), V)."""

    def __init__(self, config: UPSConfig, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        kernel = config.temporal_kernel_size
        if kernel % 2 != 1:
            raise ValueError(f"temporal_kernel_size must be odd (frame-exact masking), got {kernel}")
        self.stride = stride
        self.graph = UPSGraphBlock(config, in_channels, out_channels)
        self.temporal_conv = nn.Conv2d(
            out_channels, out_channels, kernel_size=(kernel, 1), stride=(stride, 1), padding=((kernel - 1) // 2, 0)
        )
        self.temporal_norm = _feature_map_norm(config, out_channels)
        if in_channels == out_channels and stride == 1:
            self.residual = None
        else:
            self.residual = UPSConvNorm(config, in_channels, out_channels, stride)

    def forward(self, hidden_states: torch.Tensor, context: _RowContext, out_context: _RowContext) -> torch.Tensor:
        out = self.temporal_norm(self.temporal_conv(self.graph(hidden_states, context)), out_context)
        residual = hidden_states if self.residual is None else self.residual(hidden_states, out_context)
        return F.relu(out + residual) * out_context.feature_mask


class UPSJointTokenizer(nn.Module):
    """Stack of TCN-GCN layers (`config.tokenizer_channels`, `config.tokenizer_temporal_strides`) turning
    (N, C, T, V) coordinates into joint tokens (N, d, T', V) with T' = ceil(T / prod(strides)). C is
    `config.input_channels`, twice that with `config.root_relative_input` (coordinates, then root-relative ones)."""

    def __init__(self, config: UPSConfig):
        super().__init__()
        in_channels = config.input_channels * (2 if config.root_relative_input else 1)
        channels = [in_channels] + [int(c) for c in config.tokenizer_channels]
        self.layers = nn.ModuleList(
            UPSTokenizerLayer(config, channels[i], channels[i + 1], int(stride))
            for i, stride in enumerate(config.tokenizer_temporal_strides)
        )

    def forward(self, hidden_states: torch.Tensor, context: _RowContext) -> tuple[torch.Tensor, _RowContext]:
        for layer in self.layers:
            out_context = context.downsample(layer.stride)
            hidden_states = layer(hidden_states, context, out_context)
            context = out_context
        return hidden_states, context


# ----------------------------------------------------------------------------------------------------------------
# Encoder: SEM-TEM blocks and dynamic routing
# ----------------------------------------------------------------------------------------------------------------


class UPSFrameSelfAttention(nn.Module):
    """Multi-head self-attention over frame tokens (each token: one frame's flattened joint features)."""

    is_causal = False

    def __init__(self, config: UPSConfig, token_dim: int):
        super().__init__()
        self.config = config
        self.num_heads = config.encoder_attention_heads
        self.head_dim = config.encoder_attention_dim // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.qkv_proj = nn.Linear(token_dim, 3 * config.encoder_attention_dim)
        self.out_proj = nn.Linear(config.encoder_attention_dim, token_dim)

    def forward(
        self, hidden_states: torch.Tensor, attention_bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        n, t, _ = hidden_states.shape
        qkv = self.qkv_proj(hidden_states).view(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        output, weights = attention_interface(
            self, qkv[0], qkv[1], qkv[2], attention_bias, scaling=self.scaling,
            dropout=self.attention_dropout if self.training else 0.0, is_causal=False,
        )
        return self.out_proj(output.reshape(n, t, -1)), weights


class UPSTemporalModule(GradientCheckpointingLayer):
    """TEM: pre-LN self-attention across frame tokens, then a pre-LN 2-layer MLP. Tokens are (N, T', V * d).
    Returns the tokens and the attention weights (None unless the attention implementation returns them)."""

    def __init__(self, config: UPSConfig, token_dim: int):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(token_dim)
        self.self_attn = UPSFrameSelfAttention(config, token_dim)
        self.final_layer_norm = nn.LayerNorm(token_dim)
        self.fc1 = nn.Linear(token_dim, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, token_dim)
        self.dropout = config.dropout

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor, token_mask: torch.Tensor):
        attended, weights = self.self_attn(self.self_attn_layer_norm(hidden_states), attention_bias)
        hidden_states = hidden_states + F.dropout(attended, p=self.dropout, training=self.training)
        mlp = self.fc2(F.dropout(F.gelu(self.fc1(self.final_layer_norm(hidden_states))), self.dropout, self.training))
        hidden_states = hidden_states + F.dropout(mlp, p=self.dropout, training=self.training)
        return hidden_states * token_mask, weights


class UPSEncoderBlock(nn.Module):
    """One SEM-TEM block: SEM (two graph blocks) on (N, d, T', V), then TEM on the frame tokens. Returns the
    features (N, d, T', V) and TEM's attention weights (N, heads, T', T') or None."""

    def __init__(self, config: UPSConfig):
        super().__init__()
        width = int(config.tokenizer_channels[-1])
        self.spatial = nn.ModuleList(UPSGraphBlock(config, width, width) for _ in range(2))
        self.temporal = UPSTemporalModule(config, width * config.max_joints)

    def forward(self, hidden_states: torch.Tensor, context: _RowContext, attention_bias: torch.Tensor):
        for block in self.spatial:
            hidden_states = block(hidden_states, context)
        n, d, t, v = hidden_states.shape
        tokens = hidden_states.permute(0, 2, 3, 1).reshape(n, t, v * d)
        token_mask = context.feature_mask.permute(0, 2, 3, 1).expand(n, t, v, d).reshape(n, t, v * d)
        tokens, weights = self.temporal(tokens, attention_bias, token_mask)
        return tokens.view(n, t, v, d).permute(0, 3, 1, 2), weights


class UPSEncoderLayer(nn.Module):
    """`config.encoder_blocks_per_layer` parallel SEM-TEM blocks; the router chooses which one each sample uses."""

    def __init__(self, config: UPSConfig):
        super().__init__()
        self.blocks = nn.ModuleList(UPSEncoderBlock(config) for _ in range(config.encoder_blocks_per_layer))

    def forward(self, hidden_states, context, attention_bias, gates=None, choices=None):
        """Either `gates` (N, H) straight-through one-hot weights (training: every block runs and the gates carry the
        gradient to the routing embeddings) or `choices` (N,) block indices (inference: each block runs only on the
        rows that chose it, a block no row chose does not run). Returns the features and, per row, the attention
        weights of the block it used (None unless the attention implementation returns weights)."""
        if gates is not None:
            outputs = [block(hidden_states, context, attention_bias) for block in self.blocks]
            out = sum(gates[:, h, None, None, None] * features for h, (features, _) in enumerate(outputs))
            weights = None
            if outputs[0][1] is not None:
                chosen = gates.argmax(-1)
                weights = torch.stack([w for _, w in outputs])[chosen, torch.arange(chosen.shape[0])]
            return out, weights
        out = weights = None
        for h, block in enumerate(self.blocks):
            rows = (choices == h).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            if rows.numel() == choices.numel():
                return block(hidden_states, context, attention_bias)
            chosen, chosen_weights = block(hidden_states[rows], context.select(rows), attention_bias[rows])
            if out is None:
                out = hidden_states.new_zeros(hidden_states.shape[:2] + chosen.shape[2:])
            out = out.index_copy(0, rows, chosen)
            if chosen_weights is not None:
                if weights is None:
                    weights = chosen_weights.new_zeros((choices.shape[0],) + chosen_weights.shape[1:])
                weights = weights.index_copy(0, rows, chosen_weights)
        return out, weights


class UPSTaskEmbedding(nn.Embedding):
    """Routing task embeddings tau, (num_tasks, routing_embedding_dim)."""


class UPSBlockEmbeddings(nn.Module):
    """Routing block embeddings, one `routing_embedding_dim` vector per (layer, block)."""

    def __init__(self, num_layers: int, num_blocks: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_layers, num_blocks, dim))


class UPSTaskRouter(nn.Module):
    r"""
    Dynamic routing: block ``h`` of layer ``l`` scores ``s[l, h] = B[l, h] . tau[task]``. Training samples a
    straight-through one-hot choice per sample and layer with Gumbel-softmax at temperature `gumbel_temperature`;
    inference takes the argmax (deterministic per task).
    """

    def __init__(self, config: UPSConfig):
        super().__init__()
        self.task_embedding = UPSTaskEmbedding(len(config.tasks), config.routing_embedding_dim)
        self.block_embeddings = UPSBlockEmbeddings(
            config.encoder_layers, config.encoder_blocks_per_layer, config.routing_embedding_dim
        )
        self.gumbel_temperature = float(config.gumbel_temperature)

    def forward(self, task_ids: torch.Tensor):
        """Returns scores (B, L, H), decisions (B, L) and gates (B, L, H) (gates are None outside training)."""
        scores = torch.einsum("lhq,bq->blh", self.block_embeddings.weight, self.task_embedding(task_ids))
        if self.training:
            gates = F.gumbel_softmax(scores, tau=self.gumbel_temperature, hard=True, dim=-1)
            return scores, gates.argmax(-1), gates
        return scores, scores.argmax(-1), None


class UPSEncoder(nn.Module):
    r"""
    Joint tokenizer + routed SEM-TEM layers + projection to the decoder width.

    Persons are folded into the batch (rows ``N = B * M``); absent persons are not computed at all (their memory is
    zero and masked). Joints are padded to `config.max_joints`. The output concatenates the persons' frame tokens
    along time: memory (B, M * T', d_model) and its mask.
    """

    def __init__(self, config: UPSConfig):
        super().__init__()
        self.config = config
        width = int(config.tokenizer_channels[-1])
        self.graph = UPSSkeletonGraph(config)
        self.joint_tokenizer = UPSJointTokenizer(config)
        self.embed_positions = nn.Embedding(math.ceil(config.max_frames / config.temporal_downsampling), width)
        self.routing = UPSTaskRouter(config)
        self.layers = nn.ModuleList(UPSEncoderLayer(config) for _ in range(config.encoder_layers))
        self.output_proj = nn.Linear(width * config.max_joints, config.d_model)
        self.layer_norm = nn.LayerNorm(config.d_model)

    # -- input checks --------------------------------------------------------------------------------------------
    def _check_inputs(self, pose_values, attention_mask, person_mask, task_ids, layout_ids):
        config = self.config
        if not torch.is_tensor(pose_values):
            raise TypeError(f"pose_values must be a torch.Tensor, got {type(pose_values).__name__}")
        if pose_values.ndim == 4:
            # (B, T, J, C): a single person per clip.
            pose_values = pose_values.unsqueeze(1)
        if pose_values.ndim != 5:
            raise ValueError(
                "pose_values must have shape (batch, persons, frames, joints, coordinates) (or (batch, frames, joints, "
                f"coordinates) for one person), got rank {pose_values.ndim} with shape {tuple(pose_values.shape)}"
            )
        b, m, t, j, c = pose_values.shape
        if c != config.input_channels:
            hint = " 2D keypoints must be padded with a zero Z coordinate (the UPS feature extractor does this)." \
                if c == 2 else ""
            raise ValueError(
                f"pose_values has {c} coordinates per joint but the model expects input_channels="
                f"{config.input_channels}.{hint}"
            )
        if m > config.max_persons:
            raise ValueError(
                f"pose_values has {m} persons but the model takes at most max_persons={config.max_persons}"
            )
        if t > config.max_frames:
            raise ValueError(
                f"pose_values has {t} frames, more than max_frames={config.max_frames}; resample the clip first "
                "(the UPS feature extractor does this)"
            )
        if t == 0:
            raise ValueError("pose_values has no frames")
        if not torch.isfinite(pose_values).all():
            raise ValueError("pose_values contains NaN or inf values; replace missing joints with zeros")

        if task_ids is None:
            raise ValueError(f"task_ids is required: one id per sample indexing config.tasks={list(config.tasks)}")
        task_ids = torch.as_tensor(task_ids, device=pose_values.device).long().reshape(-1)
        if task_ids.shape[0] != b:
            raise ValueError(f"task_ids has {task_ids.shape[0]} entries for a batch of {b}")
        if ((task_ids < 0) | (task_ids >= len(config.tasks))).any():
            raise ValueError(f"task_ids out of range: got {task_ids.tolist()}, config.tasks has {len(config.tasks)}")

        num_joints = [v["num_joints"] for v in config.layouts]
        if layout_ids is None:
            matches = [i for i, n in enumerate(num_joints) if n == j]
            if len(matches) != 1:
                raise ValueError(
                    f"layout_ids not given and {j} joints match {len(matches)} of the model's layouts "
                    f"{dict(zip(config.layout_names, num_joints))}: pass layout_ids"
                )
            layout_ids = torch.full((b,), matches[0], dtype=torch.long, device=pose_values.device)
        else:
            layout_ids = torch.as_tensor(layout_ids, device=pose_values.device).long().reshape(-1)
            if layout_ids.shape[0] != b:
                raise ValueError(f"layout_ids has {layout_ids.shape[0]} entries for a batch of {b}")
            if ((layout_ids < 0) | (layout_ids >= len(num_joints))).any():
                raise ValueError(
                    f"layout_ids out of range: got {layout_ids.tolist()}, the model has {len(num_joints)} layouts"
                )
            largest = max(num_joints[i] for i in layout_ids.tolist())
            # More joints than the batch's largest layout are accepted when they are zero padding (up to
            # max_joints): a row sliced from a batch keeps the batch's padding. Non-zero values there would be data
            # the layouts cannot place, i.e. a wrong layout id.
            if j < largest or j > config.max_joints or bool(pose_values[..., largest:, :].ne(0).any()):
                raise ValueError(
                    f"pose_values has {j} joints but the largest joint count among the batch's layouts is {largest}: "
                    "pad every sample's joints to the largest layout of the batch (joints beyond it must be zero)"
                )

        if attention_mask is None:
            attention_mask = torch.ones(b, t, dtype=torch.long, device=pose_values.device)
        elif tuple(attention_mask.shape) != (b, t):
            raise ValueError(
                f"attention_mask (frame mask) must have shape (batch, frames) = {(b, t)}, got "
                f"{tuple(attention_mask.shape)}"
            )
        if (attention_mask.sum(1) == 0).any():
            raise ValueError("attention_mask marks no frame as real for at least one sample")

        if person_mask is None:
            person_mask = pose_values.flatten(2).ne(0).any(-1)
            person_mask[:, 0] = True
        elif tuple(person_mask.shape) != (b, m):
            raise ValueError(
                f"person_mask must have shape (batch, persons) = {(b, m)}, got {tuple(person_mask.shape)}"
            )
        elif not person_mask[:, 0].bool().all():
            raise ValueError("person_mask must mark person 0 present in every sample")
        return pose_values, attention_mask, person_mask.bool(), task_ids, layout_ids

    # -- forward -------------------------------------------------------------------------------------------------
    def forward(
        self,
        pose_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        person_mask: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        layout_ids: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> UPSEncoderOutput:
        r"""
        Args:
            pose_values (`torch.FloatTensor` of shape `(batch_size, num_persons, num_frames, num_joints, 3)`):
                Normalised coordinates (2D input has Z = 0). A rank-4 tensor `(batch_size, num_frames, num_joints, 3)`
                is taken as one person per clip. `num_joints` is the largest joint count among the batch's layouts;
                more joints (up to `config.max_joints`) are accepted when they are zero.
            attention_mask (`torch.LongTensor` of shape `(batch_size, num_frames)`, *optional*): 1 for real frames.
            person_mask (`torch.LongTensor` of shape `(batch_size, num_persons)`, *optional*): 1 for present
                persons; defaults to persons with any non-zero coordinate (person 0 always).
            task_ids (`torch.LongTensor` of shape `(batch_size,)`): index into `config.tasks`.
            layout_ids (`torch.LongTensor` of shape `(batch_size,)`, *optional*): index into `config.layouts`;
                may be omitted when exactly one layout has `num_joints` joints.
            output_attentions (`bool`, *optional*): return the temporal self-attention weights of every layer
                (eager attention); defaults to `config.output_attentions`.
            output_hidden_states (`bool`, *optional*): return the frame tokens entering and leaving every layer;
                defaults to `config.output_hidden_states`.
            return_dict (`bool`, *optional*): `False` returns `to_tuple()`; defaults to `config.return_dict`.
        """
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        pose_values, attention_mask, person_mask, task_ids, layout_ids = self._check_inputs(
            pose_values, attention_mask, person_mask, task_ids, layout_ids
        )
        b, m, t, j, _ = pose_values.shape
        dtype = self.output_proj.weight.dtype
        max_joints = self.config.max_joints

        # Fold persons into the batch and keep only present persons' rows.
        present = person_mask.reshape(-1)
        rows = present.nonzero().squeeze(1)
        row_sample = rows // m
        x = pose_values.to(dtype).reshape(b * m, t, j, -1)[rows]
        if j < max_joints:
            x = F.pad(x, (0, 0, 0, max_joints - j))
        x = x.permute(0, 3, 1, 2)  # (N, C, T, V)

        row_layouts = layout_ids[row_sample]
        frame_mask = attention_mask.to(dtype)[row_sample]
        context = _RowContext(
            frame_mask, self.graph.joint_mask[row_layouts].to(dtype), self.graph.adjacency[row_layouts].to(dtype),
            row_layouts, task_ids[row_sample],
        )
        x = x * context.feature_mask
        if self.config.root_relative_input:
            x = torch.cat([x, self.graph.root_relative(x, row_layouts)], 1)

        hidden_states, context = self.joint_tokenizer(x, context)
        num_tokens = hidden_states.shape[2]
        positions = self.embed_positions.weight[:num_tokens].t()  # (d, T')
        hidden_states = (hidden_states + positions[None, :, :, None]) * context.feature_mask
        attention_bias = _additive_key_mask(context.frame_mask, dtype)

        def per_sample(row_values: torch.Tensor) -> torch.Tensor:
            """(N, ...) values of the present persons' rows -> (B, M, ...), absent persons zero."""
            scattered = row_values.new_zeros((b * m,) + row_values.shape[1:]).index_copy(0, rows, row_values)
            return scattered.view((b, m) + row_values.shape[1:])

        def frame_tokens(features: torch.Tensor) -> torch.Tensor:
            """(N, d, T', V) features -> (B, M * T', V * d) frame tokens."""
            n, d, _, v = features.shape
            return per_sample(features.permute(0, 2, 3, 1).reshape(n, num_tokens, v * d)).flatten(1, 2)

        def report(features: torch.Tensor) -> torch.Tensor:
            """Append the frame tokens of `features` to the hidden states and return the features read back from
            them: the next layer computes from the reported tensor, so gradients reach it (`retain_grad()` works, as
            on the hidden states of in-tree models). Gathering the rows back is exact and keeps the memory layout."""
            nonlocal all_hidden_states
            all_hidden_states += (frame_tokens(features),)
            back = all_hidden_states[-1].view(b * m, num_tokens, max_joints, -1)[rows].permute(0, 3, 1, 2)
            return back.contiguous() if features.is_contiguous() else back

        all_hidden_states = () if output_hidden_states else None
        if output_hidden_states:
            hidden_states = report(hidden_states)
        all_attentions = () if output_attentions else None
        scores, decisions, gates = self.routing(task_ids)
        for layer_idx, layer in enumerate(self.layers):
            if gates is not None:
                hidden_states, weights = layer(hidden_states, context, attention_bias, gates=gates[row_sample, layer_idx])
            else:
                hidden_states, weights = layer(
                    hidden_states, context, attention_bias, choices=decisions[row_sample, layer_idx]
                )
            if output_hidden_states:
                hidden_states = report(hidden_states)
            if output_attentions and weights is not None:
                all_attentions += (per_sample(weights),)
        if output_attentions and len(all_attentions) < len(self.layers):
            _warn_no_attention_weights(self.config)

        n, d, _, v = hidden_states.shape
        tokens = self.output_proj(hidden_states.permute(0, 2, 3, 1).reshape(n, num_tokens, v * d))
        tokens = self.layer_norm(tokens) * context.frame_mask[:, :, None]

        memory = per_sample(tokens)
        memory_mask = per_sample(context.frame_mask.long())
        output = UPSEncoderOutput(
            last_hidden_state=memory.view(b, m * num_tokens, -1),
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            attention_mask=memory_mask.view(b, m * num_tokens),
            router_decisions=decisions,
            router_probs=scores.softmax(-1),
            task_ids=task_ids,
            layout_ids=layout_ids,
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()


# ----------------------------------------------------------------------------------------------------------------
# Decoder
# ----------------------------------------------------------------------------------------------------------------


class UPSAttention(nn.Module):
    """Multi-head attention of the decoder (causal self-attention or cross-attention), with KV cache."""

    def __init__(self, config: UPSConfig, is_causal: bool, layer_idx: int):
        super().__init__()
        self.config = config
        self.embed_dim = config.d_model
        self.num_heads = config.decoder_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = is_causal
        self.layer_idx = layer_idx
        self.attention_dropout = config.attention_dropout
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(self, hidden_states, key_value_states=None, cache: EncoderDecoderCache | None = None,
                attention_mask=None):
        is_cross = key_value_states is not None
        b, length, _ = hidden_states.shape
        query = self.q_proj(hidden_states).view(b, length, self.num_heads, self.head_dim).transpose(1, 2)

        layer_cache = None
        if cache is not None:
            layer_cache = cache.cross_attention_cache if is_cross else cache.self_attention_cache
        if is_cross and cache is not None and cache.is_updated.get(self.layer_idx):
            # The memory does not change while decoding: its keys/values were computed at the first step.
            key, value = layer_cache.layers[self.layer_idx].keys, layer_cache.layers[self.layer_idx].values
        else:
            source = key_value_states if is_cross else hidden_states
            key = self.k_proj(source).view(b, source.shape[1], self.num_heads, self.head_dim).transpose(1, 2)
            value = self.v_proj(source).view(b, source.shape[1], self.num_heads, self.head_dim).transpose(1, 2)
            if layer_cache is not None:
                key, value = layer_cache.update(key, value, self.layer_idx)
                if is_cross:
                    cache.is_updated[self.layer_idx] = True

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        output, weights = attention_interface(
            self, query, key, value, attention_mask, scaling=self.scaling,
            dropout=self.attention_dropout if self.training else 0.0,
        )
        return self.out_proj(output.reshape(b, length, -1)), weights


class UPSDecoderLayer(GradientCheckpointingLayer):
    """Pre-LN transformer decoder layer: causal self-attention, cross-attention to the pose memory, feed-forward."""

    def __init__(self, config: UPSConfig, layer_idx: int):
        super().__init__()
        self.dropout = config.dropout
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.self_attn = UPSAttention(config, is_causal=True, layer_idx=layer_idx)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.encoder_attn = UPSAttention(config, is_causal=False, layer_idx=layer_idx)
        self.final_layer_norm = nn.LayerNorm(config.d_model)
        self.fc1 = nn.Linear(config.d_model, config.decoder_ffn_dim)
        self.fc2 = nn.Linear(config.decoder_ffn_dim, config.d_model)

    def forward(self, hidden_states, attention_mask, encoder_hidden_states, encoder_attention_mask=None,
                cache: EncoderDecoderCache | None = None):
        residual = hidden_states
        out, self_weights = self.self_attn(
            self.self_attn_layer_norm(hidden_states), cache=cache, attention_mask=attention_mask
        )
        hidden_states = residual + F.dropout(out, p=self.dropout, training=self.training)
        residual = hidden_states
        out, cross_weights = self.encoder_attn(
            self.encoder_attn_layer_norm(hidden_states), key_value_states=encoder_hidden_states,
            cache=cache, attention_mask=encoder_attention_mask,
        )
        hidden_states = residual + F.dropout(out, p=self.dropout, training=self.training)
        residual = hidden_states
        out = self.fc2(F.dropout(F.gelu(self.fc1(self.final_layer_norm(hidden_states))), self.dropout, self.training))
        hidden_states = residual + F.dropout(out, p=self.dropout, training=self.training)
        return hidden_states, self_weights, cross_weights


class UPSDecoder(nn.Module):
    """Transformer decoder over the unified vocabulary. Every input position also receives a task embedding and a
    layout embedding, so pose tokens know which joint/axis of which skeleton they describe."""

    def __init__(self, config: UPSConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_positions = nn.Embedding(config.max_target_positions, config.d_model)
        self.embed_tasks = nn.Embedding(len(config.tasks), config.d_model)
        self.embed_layouts = nn.Embedding(len(config.layouts), config.d_model)
        self.layers = nn.ModuleList(UPSDecoderLayer(config, i) for i in range(config.decoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model)
        self.dropout = config.dropout

    def forward(
        self,
        input_ids: torch.LongTensor,
        encoder_hidden_states: torch.Tensor,
        task_ids: torch.LongTensor,
        layout_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        b, length = input_ids.shape
        if use_cache and self.training and torch.is_grad_enabled() and any(
            layer.gradient_checkpointing for layer in self.layers
        ):
            # A checkpointed layer runs again in the backward pass and would write its keys/values to the cache a
            # second time (the layer wrapper only knows the cache's keyword name of its own transformers version).
            logger.warning_once("`use_cache=True` is incompatible with gradient checkpointing: using `use_cache=False`")
            use_cache, cache = False, None
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        past_length = cache.get_seq_length() if cache is not None else 0
        if past_length + length > self.config.max_target_positions:
            raise ValueError(
                f"decoder sequence of {past_length + length} positions exceeds max_target_positions="
                f"{self.config.max_target_positions}"
            )
        positions = torch.arange(past_length, past_length + length, device=input_ids.device)
        token_dropout = self.config.decoder_token_dropout
        if self.training and token_dropout > 0:
            # Hide teacher-forced tokens (never the start token) so that predictions lean on the encoder.
            hidden = torch.rand(input_ids.shape, device=input_ids.device) < token_dropout
            hidden &= (positions > 0)[None]
            input_ids = input_ids.masked_fill(hidden, self.config.unk_token_id)
        hidden_states = (
            self.embed_tokens(input_ids)
            + self.embed_positions(positions)[None]
            + (self.embed_tasks(task_ids) + self.embed_layouts(layout_ids))[:, None]
        )
        hidden_states = F.dropout(hidden_states, p=self.dropout, training=self.training)

        if attention_mask is None:
            attention_mask = torch.ones(b, past_length + length, dtype=torch.long, device=input_ids.device)
        # The cache is create_causal_mask's fourth parameter under both of its names (`past_key_values` before
        # transformers 5.24, `cache` since): pass it by position.
        self_cache = cache.self_attention_cache if cache is not None else None
        causal_mask = create_causal_mask(self.config, hidden_states, attention_mask, self_cache)
        cross_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )

        all_hidden = () if output_hidden_states else None
        all_self = () if output_attentions else None
        all_cross = () if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden += (hidden_states,)
            hidden_states, self_weights, cross_weights = layer(
                hidden_states, causal_mask, encoder_hidden_states, encoder_attention_mask=cross_mask,
                cache=cache,
            )
            if output_attentions and self_weights is not None:
                all_self += (self_weights,)
                all_cross += (cross_weights,)
        if output_attentions and len(all_self) < len(self.layers):
            _warn_no_attention_weights(self.config)
        hidden_states = self.layer_norm(hidden_states)
        if output_hidden_states:
            all_hidden += (hidden_states,)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            **{CACHE_FIELD: cache if use_cache else None},
            hidden_states=all_hidden,
            attentions=all_self,
            cross_attentions=all_cross,
        )


# ----------------------------------------------------------------------------------------------------------------
# Pretrained-model plumbing
# ----------------------------------------------------------------------------------------------------------------


class UPSPreTrainedModel(PreTrainedModel):
    config: UPSConfig
    config_class = UPSConfig
    base_model_prefix = "model"
    main_input_name = "pose_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["UPSEncoderLayer", "UPSDecoderLayer"]
    # The decoder cache stays where generate() put it, under either name of the installed transformers.
    _skip_keys_device_placement = ["cache", "past_key_values"]
    _supports_sdpa = True

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, use_safetensors: bool = True, **kwargs):
        r"""
        [`PreTrainedModel.from_pretrained`] that reads weights from `model.safetensors` only.

        transformers 5.23 falls back to `pytorch_model.bin` when a folder has no safetensors file; a `.bin` is a
        pickle, and unpickling a checkpoint of unknown origin can run code, so UPS checkpoints never load one
        (`save_pretrained` writes safetensors). A folder holding only `pytorch_model.bin` raises `OSError`; convert
        a trusted one once with `model.load_state_dict(torch.load(path))` + `save_pretrained`.

        Args:
            use_safetensors (`bool`, *optional*, defaults to `True`): must stay `True`; `False` raises ValueError.
        """
        if not use_safetensors:
            raise ValueError(
                "UPS models load weights from model.safetensors only (use_safetensors=False would unpickle "
                "pytorch_model.bin, which can run code); convert a trusted .bin with save_pretrained first"
            )
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, use_safetensors=True, **kwargs)

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """Refused unless the size stays the same: the vocabulary's size follows from its layout (special tokens,
        `num_label_tokens` labels, `3 * num_bins` coordinate bins, end-of-task tokens), whose ids the config derives."""
        size = self.config.vocab_size if new_num_tokens is None else new_num_tokens
        if pad_to_multiple_of:
            size = math.ceil(size / pad_to_multiple_of) * pad_to_multiple_of
        if size != self.config.vocab_size:
            raise ValueError(
                f"UPS cannot resize its vocabulary from {self.config.vocab_size} to {size} tokens: the size follows "
                "from num_label_tokens and num_bins. To train other labels, build a UPSConfig with another "
                "num_label_tokens (and a processor with those labels) and load the weights with "
                "ignore_mismatched_sizes=True"
            )
        return self.get_input_embeddings()

    def _init_weights(self, module):
        # v5 runs _init_weights per module and, for custom code, skips modules owning no direct parameters or
        # buffers: every branch below targets the module that owns the tensor.
        std = self.config.init_std
        if isinstance(module, UPSTaskEmbedding):
            # s = B . tau has unit variance when both entries have variance q ** -1/2: the routing starts decisive
            # enough for the Gumbel noise to explore rather than dominate.
            init.normal_(module.weight, mean=0.0, std=self.config.routing_embedding_dim**-0.25)
        elif isinstance(module, UPSBlockEmbeddings):
            init.normal_(module.weight, mean=0.0, std=self.config.routing_embedding_dim**-0.25)
        elif isinstance(module, (UPSChannelNorm, UPSTaskBatchNorm)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, UPSTaskBatchNorm):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
        elif isinstance(module, UPSGraphConvolution):
            init.zeros_(module.alpha)
            init.zeros_(module.topology_offset)
        elif isinstance(module, UPSSkeletonGraph):
            for buffer, value in zip(("adjacency", "joint_mask", "root_weights"), module.compute_buffers()):
                init.copy_(getattr(module, buffer), value)
        elif isinstance(module, nn.Conv2d):
            # Convolutions of the graph network: He initialisation (fan-out), as in ST-GCN/CTR-GCN.
            init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        else:
            super()._init_weights(module)


class UPSModel(UPSPreTrainedModel):
    """Bare UPS encoder-decoder returning decoder states (no vocabulary projection)."""

    def __init__(self, config: UPSConfig):
        super().__init__(config)
        self.encoder = UPSEncoder(config)
        self.decoder = UPSDecoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.decoder.embed_tokens

    def set_input_embeddings(self, value):
        self.decoder.embed_tokens = value

    def get_encoder(self):
        return self.encoder

    def forward(
        self,
        pose_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        person_mask: torch.Tensor | None = None,
        task_ids: torch.LongTensor | None = None,
        layout_ids: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: UPSEncoderOutput | tuple | None = None,
        cache: EncoderDecoderCache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: EncoderDecoderCache | None = None,
    ) -> UPSSeq2SeqModelOutput | tuple:
        r"""
        Args:
            pose_values, attention_mask, person_mask, task_ids, layout_ids: see [`UPSEncoder.forward`].
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, target_length)`): decoder input ids.
            decoder_attention_mask (`torch.LongTensor`, *optional*): decoder padding mask (causal masking is built in).
            encoder_outputs ([`UPSEncoderOutput`] or its `to_tuple()`, *optional*): skips the encoder.
            cache (`EncoderDecoderCache`, *optional*): decoder keys/values of earlier steps; `past_key_values` is the
                same argument under its name before transformers 5.24.
            use_cache, output_attentions, output_hidden_states, return_dict (`bool`, *optional*): default to the
                config's values.
        """
        cache = _resolve_cache(cache, past_key_values)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if encoder_outputs is None:
            if pose_values is None:
                raise ValueError("Pass pose_values (or precomputed encoder_outputs)")
            encoder_outputs = self.encoder(
                pose_values, attention_mask, person_mask, task_ids, layout_ids,
                output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
            )
        elif not isinstance(encoder_outputs, UPSEncoderOutput):
            encoder_outputs = UPSEncoderOutput.from_tuple(encoder_outputs)
        task_ids = encoder_outputs.task_ids if task_ids is None else torch.as_tensor(task_ids).long()
        layout_ids = encoder_outputs.layout_ids if layout_ids is None else torch.as_tensor(layout_ids).long()
        if task_ids is None or layout_ids is None:
            raise ValueError("task_ids and layout_ids are required (directly or through encoder_outputs)")
        if decoder_input_ids is None:
            raise ValueError("Pass decoder_input_ids (or labels to UPSForPoseSequenceModeling)")
        decoder_outputs = self.decoder(
            decoder_input_ids,
            encoder_outputs.last_hidden_state,
            task_ids.to(decoder_input_ids.device),
            layout_ids.to(decoder_input_ids.device),
            attention_mask=decoder_attention_mask,
            encoder_attention_mask=encoder_outputs.attention_mask,
            cache=cache,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        output = UPSSeq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            **{CACHE_FIELD: getattr(decoder_outputs, CACHE_FIELD)},
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            encoder_attention_mask=encoder_outputs.attention_mask,
            router_decisions=encoder_outputs.router_decisions,
            router_probs=encoder_outputs.router_probs,
        )
        return output if return_dict else output.to_tuple()


# ----------------------------------------------------------------------------------------------------------------
# Generation constraint
# ----------------------------------------------------------------------------------------------------------------


class UPSTaskConstrainedLogitsProcessor(LogitsProcessor):
    r"""
    Makes every generated sequence well formed for its row's task and layout.

    Label tasks (recognition, early prediction): step 0 allows only action-label tokens, step 1 only the task's
    end-of-task token. Pose estimation: step ``i < 3 * J * K`` (``J`` joints of the layout the row's input is lifted
    to, `config.pose_target_layouts`; ``K`` = `config.pose_estimation_target_frames`) allows only the bins of axis
    ``i % 3`` (x, y, z), then only EOT_PE.
    Beyond its length a row may only repeat its EOT (generation has stopped it by then; this keeps scores finite).

    Rows may mix tasks and layouts. When generation expands rows (beams, returned sequences) with `repeat_interleave`,
    the per-row tables are expanded the same way. The step is `input_ids.shape[1] - 1`: the decoder prompt is the
    single start token.

    Args:
        config (`UPSConfig`): vocabulary layout, tasks and layouts.
        task_ids (`torch.LongTensor` of shape `(batch_size,)`): task of each sample.
        layout_ids (`torch.LongTensor` of shape `(batch_size,)`): layout of each sample.
    """

    def __init__(self, config: UPSConfig, task_ids: torch.Tensor, layout_ids: torch.Tensor):
        tasks = list(config.tasks)
        eot_ids = config.eot_token_ids
        task_eot_index = torch.tensor([TASK_TO_EOT_INDEX[t] for t in tasks])
        task_ids = torch.as_tensor(task_ids).long().cpu()
        layout_ids = torch.as_tensor(layout_ids).long().cpu()
        joints = torch.tensor(config.pose_target_num_joints)[layout_ids]  # pose outputs: the target layout
        eot_index = task_eot_index[task_ids]
        self.is_pose = eot_index == _POSE_EOT_INDEX
        self.eot = torch.tensor(eot_ids)[eot_index]
        self.length = torch.where(self.is_pose, 3 * joints * config.pose_estimation_target_frames, 1)
        self.label_range = (config.label_token_offset, config.label_token_offset + config.num_label_tokens)
        self.bin_offset = config.bin_token_offset
        self.num_bins = config.num_bins

    @property
    def max_new_tokens(self) -> int:
        """Tokens the longest row needs, its EOT included."""
        return int(self.length.max()) + 1

    def allowed_range(self, step: int, rows: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """[low, high) token ids each of `rows` rows may emit at `step` (rows a multiple of the batch)."""
        expand = rows // self.length.shape[0]
        is_pose = self.is_pose.repeat_interleave(expand).to(device)
        length = self.length.repeat_interleave(expand).to(device)
        eot = self.eot.repeat_interleave(expand).to(device)
        axis_low = self.bin_offset + (step % 3) * self.num_bins
        low = torch.where(is_pose, torch.full_like(eot, axis_low), torch.full_like(eot, self.label_range[0]))
        high = torch.where(is_pose, torch.full_like(eot, axis_low + self.num_bins),
                           torch.full_like(eot, self.label_range[1]))
        done = step >= length
        return torch.where(done, eot, low), torch.where(done, eot + 1, high)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = scores.shape[0]
        if rows % self.length.shape[0]:
            raise ValueError(f"{rows} score rows are not a multiple of the batch of {self.length.shape[0]}")
        low, high = self.allowed_range(input_ids.shape[1] - 1, rows, scores.device)
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        allowed = (vocab[None] >= low[:, None]) & (vocab[None] < high[:, None])
        return scores.masked_fill(~allowed, -float("inf"))


# ----------------------------------------------------------------------------------------------------------------
# The model with the vocabulary head
# ----------------------------------------------------------------------------------------------------------------

# generate() options that ask for assisted (speculative) decoding, which UPS refuses.
_ASSISTED_DECODING_OPTIONS = ("assistant_model", "prompt_lookup_num_tokens", "assistant_early_exit")

# generate() options under which a label-only batch can be decoded in one decoder step.
_FAST_PATH_OPTIONS = {
    "max_new_tokens", "max_length", "num_beams", "do_sample", "use_cache", "return_dict_in_generate",
    "eos_token_id", "pad_token_id", "output_scores", "output_logits", "output_attentions", "output_hidden_states",
    "num_return_sequences",
}


class UPSForPoseSequenceModeling(UPSPreTrainedModel, GenerationMixin):
    r"""
    UPS with the vocabulary head: the model every task trains and generates with.

    The output projection is tied to the decoder's vocabulary table (`config.tie_word_embeddings`).
    [`~UPSForPoseSequenceModeling.generate`] constrains outputs to be well formed per task and decodes label-only
    batches in a single decoder step.
    """

    _tied_weights_keys = {"lm_head.weight": "model.decoder.embed_tokens.weight"}

    def __init__(self, config: UPSConfig):
        super().__init__(config)
        self.model = UPSModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.decoder.embed_tokens

    def set_input_embeddings(self, value):
        self.model.decoder.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def get_encoder(self):
        return self.model.encoder

    def set_gumbel_temperature(self, temperature: float):
        """Set the Gumbel-softmax temperature of the routing (training only; anneal it during training)."""
        if not temperature > 0:
            raise ValueError(f"gumbel temperature must be positive, got {temperature}")
        self.model.encoder.routing.gumbel_temperature = float(temperature)

    @torch.no_grad()
    def init_vocabulary_embeddings(self, features) -> None:
        r"""
        Initialise the vocabulary table (and the tied output head) from text features, one row per token.

        Args:
            features (`torch.Tensor` or array of shape `(vocab_size, width)`): e.g. text-encoder embeddings of each
                token's prompt. If `width == config.d_model` the rows are copied as given. Otherwise they are projected
                to `d_model` by PCA (centred, onto the top `d_model` principal directions; directions beyond the
                features' rank are zero) and rescaled to standard deviation `config.init_std`, so tied logits start
                at the scale of a freshly initialised table.
        """
        features = torch.as_tensor(features, dtype=torch.float32)
        table = self.get_input_embeddings().weight
        if features.ndim != 2 or features.shape[0] != table.shape[0]:
            raise ValueError(
                f"features must have shape (vocab_size={table.shape[0]}, width), got {tuple(features.shape)}"
            )
        if not torch.isfinite(features).all():
            raise ValueError("features contain NaN or inf values")
        d_model = table.shape[1]
        if features.shape[1] != d_model:
            centred = features - features.mean(0, keepdim=True)
            _, _, vh = torch.linalg.svd(centred.double(), full_matrices=False)
            k = min(d_model, vh.shape[0])
            projected = torch.zeros(features.shape[0], d_model, dtype=torch.float64)
            projected[:, :k] = centred.double() @ vh[:k].t()
            features = (projected * (self.config.init_std / projected.std().clamp(min=1e-12))).float()
        table.copy_(features.to(table.device, table.dtype))

    def forward(
        self,
        pose_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        person_mask: torch.Tensor | None = None,
        task_ids: torch.LongTensor | None = None,
        layout_ids: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: UPSEncoderOutput | tuple | None = None,
        cache: EncoderDecoderCache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_router_decisions: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: EncoderDecoderCache | None = None,
    ) -> UPSSeq2SeqLMOutput | tuple:
        r"""
        Args:
            pose_values (`torch.FloatTensor` of shape `(batch_size, num_persons, num_frames, num_joints, 3)`):
                Normalised coordinates, see [`UPSEncoder.forward`] (rank 4 = one person per clip).
            attention_mask (`torch.LongTensor` of shape `(batch_size, num_frames)`, *optional*): frame mask.
            person_mask (`torch.LongTensor` of shape `(batch_size, num_persons)`, *optional*): present persons.
            task_ids (`torch.LongTensor` of shape `(batch_size,)`): index into `config.tasks` (required).
            layout_ids (`torch.LongTensor` of shape `(batch_size,)`, *optional*): index into `config.layouts`.
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
                Defaults to `labels` shifted right behind `<s>`.
            decoder_attention_mask (`torch.LongTensor`, *optional*): decoder padding mask (causal masking is built in).
            encoder_outputs ([`UPSEncoderOutput`] or its `to_tuple()`, *optional*): skips the encoder.
            cache (`EncoderDecoderCache`, *optional*): decoder keys/values of earlier steps; `past_key_values` is the
                same argument under its name before transformers 5.24.
            labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
                Target ids ending in the task's EOT, padded with -100.
            output_router_decisions (`bool`, *optional*): return the routing decisions and probabilities.
        """
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None:
                decoder_input_ids = shift_tokens_right(
                    labels, self.config.pad_token_id, self.config.decoder_start_token_id
                )
        if encoder_outputs is not None and not isinstance(encoder_outputs, UPSEncoderOutput):
            encoder_outputs = UPSEncoderOutput.from_tuple(encoder_outputs)
        outputs = self.model(
            pose_values,
            attention_mask,
            person_mask,
            task_ids,
            layout_ids,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=_resolve_cache(cache, past_key_values),
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.lm_head(outputs.last_hidden_state)

        loss, task_losses = None, None
        if labels is not None:
            task_ids = encoder_outputs.task_ids if task_ids is None else torch.as_tensor(task_ids).long()
            loss, task_losses = self._loss(logits, labels, task_ids.to(logits.device))
        want_routes = bool(output_router_decisions)
        output = UPSSeq2SeqLMOutput(
            loss=loss,
            logits=logits,
            **{CACHE_FIELD: getattr(outputs, CACHE_FIELD)},
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
            encoder_attention_mask=outputs.encoder_attention_mask,
            router_decisions=outputs.router_decisions if want_routes else None,
            router_probs=outputs.router_probs if want_routes else None,
            task_losses=task_losses,
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()

    def _token_nll(self, logits, labels):
        """Per-token NLL (0 where the label is -100), with Gaussian bin smoothing for coordinate tokens.

        With ``config.bin_smoothing_sigma > 0`` a coordinate target is the Gaussian over its axis's bins centred
        on the true bin (SimCC-style label smoothing): neighbouring bins are almost right, so they are rewarded
        almost as much, which turns the bin classification into an ordinal target and speeds up learning.
        """
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        valid = labels != -100
        safe = labels.clamp(min=0)
        token_nll = -log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        sigma = float(getattr(self.config, "bin_smoothing_sigma", 0.0) or 0.0)
        n_bins, first_bin = self.config.num_bins, self.config.bin_token_offset
        is_bin = valid & (labels >= first_bin) & (labels < first_bin + 3 * n_bins)
        if sigma > 0 and bool(is_bin.any()):
            offset = labels[is_bin] - first_bin
            axis_start = first_bin + (offset // n_bins) * n_bins
            bins = torch.arange(n_bins, device=labels.device)
            weights = torch.exp(-0.5 * ((bins[None, :] - (offset % n_bins)[:, None]) / sigma) ** 2)
            weights = weights / weights.sum(-1, keepdim=True)
            axis_log_probs = log_probs[is_bin].gather(-1, axis_start[:, None] + bins[None, :])
            token_nll = token_nll.masked_scatter(is_bin, -(weights * axis_log_probs).sum(-1))
        return token_nll * valid

    def _loss(self, logits, labels, task_ids):
        """Token NLL ignoring -100; "sample" reduction averages within each sequence, then over sequences."""
        labels = labels.to(logits.device)
        token_nll = self._token_nll(logits, labels)
        counts = (labels != -100).sum(1)
        has_target = counts > 0
        if self.config.loss_reduction == "sample":
            per_sample = token_nll.sum(1) / counts.clamp(min=1)

            def reduce(selected):
                selected = selected & has_target
                return per_sample[selected].sum() / selected.sum().clamp(min=1)
        else:

            def reduce(selected):
                return token_nll[selected].sum() / counts[selected].sum().clamp(min=1)

        loss = reduce(torch.ones_like(has_target))
        task_losses = {}
        for task_id in task_ids.unique().tolist():
            task_losses[self.config.tasks[task_id]] = reduce(task_ids == task_id).detach()
        return loss, task_losses

    def _get_logits_processor(self, *args, **kwargs) -> LogitsProcessorList:
        # generate() appends custom processors after its own warpers; the task constraint must come first so that
        # top-k / top-p sampling choose among well-formed tokens only.
        processors = super()._get_logits_processor(*args, **kwargs)
        constraint = [p for p in processors if isinstance(p, UPSTaskConstrainedLogitsProcessor)]
        others = [p for p in processors if not isinstance(p, UPSTaskConstrainedLogitsProcessor)]
        return LogitsProcessorList(constraint + others)

    @torch.no_grad()
    def generate(
        self,
        pose_values: torch.Tensor | None = None,
        task_ids: torch.LongTensor | None = None,
        layout_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        person_mask: torch.Tensor | None = None,
        **kwargs,
    ):
        r"""
        Generate each sample's output sequence: ``[<s>, label, EOT]`` for recognition and early prediction,
        ``[<s>, x, y, z, ... , EOT_PE]`` (``3 * J * K`` bins) for pose estimation, padded with `<pad>` to the longest
        row.

        Runs the encoder once, adds [`UPSTaskConstrainedLogitsProcessor`], stops at the tasks' end-of-task tokens
        (`config.eos_token_id`) and, when neither `max_length` nor `max_new_tokens` is given, allows exactly the
        length the batch's longest output needs. Other keyword arguments go to [`GenerationMixin.generate`]
        (`num_beams`, `do_sample`, `return_dict_in_generate`, ...).

        A batch of only label tasks decoded greedily (one beam, no sampling, no per-step outputs requested) takes a
        fast path: one decoder step, the argmax over label tokens, then the EOT appended without another model call.
        It returns exactly what the general path would.

        Args:
            pose_values, task_ids, layout_ids, attention_mask, person_mask:
                as in [`UPSForPoseSequenceModeling.forward`].
        """
        user_config = kwargs.get("generation_config")
        settings = user_config if user_config is not None else self.generation_config

        def setting(name):
            return kwargs.get(name, getattr(settings, name, None))

        assisted = [name for name in _ASSISTED_DECODING_OPTIONS if setting(name) is not None]
        if assisted:
            raise ValueError(
                f"UPS generate() does not support assisted decoding ({', '.join(assisted)}): every output has the "
                "fixed, task-constrained form of its task, and label tasks already decode in one decoder step"
            )
        encoder_outputs = kwargs.pop("encoder_outputs", None)
        if pose_values is None and "inputs" in kwargs:
            pose_values = kwargs.pop("inputs")
        if encoder_outputs is None:
            if pose_values is None:
                raise ValueError("generate() needs pose_values (or encoder_outputs)")
            encoder_outputs = self.model.encoder(
                pose_values, attention_mask, person_mask, task_ids, layout_ids,
                output_attentions=bool(setting("output_attentions")),
                output_hidden_states=bool(setting("output_hidden_states")), return_dict=True,
            )
        elif not isinstance(encoder_outputs, UPSEncoderOutput):
            encoder_outputs = UPSEncoderOutput.from_tuple(encoder_outputs)
        else:
            # generate() expands the encoder outputs for beams and returned sequences in place: work on a copy, so
            # that the caller's encoder outputs can be used again.
            encoder_outputs = UPSEncoderOutput(**encoder_outputs)
        task_ids = encoder_outputs.task_ids
        layout_ids = encoder_outputs.layout_ids
        constraint = UPSTaskConstrainedLogitsProcessor(self.config, task_ids, layout_ids)
        shortest = int(constraint.length.min())  # tokens of the shortest row before its end-of-task token
        min_new_tokens, min_length = setting("min_new_tokens") or 0, setting("min_length") or 0
        # generate() bans the EOS until `min_new_tokens` new tokens precede it (`min_length` counts the start token
        # too): beyond the shortest row's fixed length that would force tokens between its output and its EOT.
        if min_new_tokens > shortest or min_length > shortest + 1:
            raise ValueError(
                f"min_new_tokens={min_new_tokens} / min_length={min_length} asks for more tokens than a row of this "
                f"batch has ({shortest} before its end-of-task token, after the start token): each task's output has "
                "a fixed length (one label, or 3 bins per joint and frame, then its end-of-task token); leave both "
                "unset"
            )

        if user_config is None or user_config.eos_token_id is None:
            kwargs.setdefault("eos_token_id", list(self.config.eot_token_ids))
        if "max_length" not in kwargs and "max_new_tokens" not in kwargs and (
            user_config is None or user_config.max_new_tokens is None
        ):
            kwargs["max_new_tokens"] = constraint.max_new_tokens

        if self._fast_path_applies(constraint, kwargs):
            return self._generate_labels_in_one_step(encoder_outputs, constraint, kwargs)

        logits_processor = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        logits_processor.append(constraint)
        outputs = super().generate(
            encoder_outputs=encoder_outputs,
            task_ids=task_ids,
            layout_ids=layout_ids,
            logits_processor=logits_processor,
            **kwargs,
        )
        # Beam search fills finished rows with `pad_token_id or eos_token_id[0]`, i.e. with an EOT when <pad> is id 0;
        # pad them as greedy search does.
        sequences = outputs if torch.is_tensor(outputs) else outputs.sequences
        eos = kwargs.get("eos_token_id", user_config.eos_token_id if user_config is not None else None)
        if eos is None:
            # `eos_token_id=None` generates to the maximum length; each row still ends at its task's EOT.
            eos = list(self.config.eot_token_ids)
        eos = torch.tensor([eos] if isinstance(eos, int) else list(eos), device=sequences.device)
        is_eos = torch.isin(sequences[:, 1:], eos)
        after_eos = (is_eos.cumsum(1) - is_eos.long()) > 0
        sequences[:, 1:].masked_fill_(after_eos, self.config.pad_token_id)
        return outputs

    def _fast_path_applies(self, constraint: UPSTaskConstrainedLogitsProcessor, kwargs: dict) -> bool:
        if bool(constraint.is_pose.any()) or not set(kwargs) <= _FAST_PATH_OPTIONS:
            return False
        defaults = self.generation_config
        if (kwargs.get("num_beams") or defaults.num_beams or 1) != 1:
            return False
        if kwargs.get("do_sample", defaults.do_sample) or (kwargs.get("num_return_sequences") or 1) != 1:
            return False
        if any(kwargs.get(k) for k in ("output_scores", "output_logits", "output_attentions", "output_hidden_states")):
            return False
        eos = kwargs["eos_token_id"]
        # Without EOS ids generation runs to the maximum length, which the one-step decoding does not reproduce.
        eos = set() if eos is None else {eos} if isinstance(eos, int) else set(eos)
        if not set(constraint.eot.tolist()) <= eos:
            return False
        if "max_new_tokens" in kwargs:
            return kwargs["max_new_tokens"] >= 2
        return kwargs["max_length"] >= 3

    def _generate_labels_in_one_step(self, encoder_outputs, constraint, kwargs):
        b = encoder_outputs.last_hidden_state.shape[0]
        device = encoder_outputs.last_hidden_state.device
        start = torch.full((b, 1), self.config.decoder_start_token_id, dtype=torch.long, device=device)
        logits = self(
            encoder_outputs=encoder_outputs, decoder_input_ids=start, use_cache=False, return_dict=True
        ).logits[:, -1, :].float()
        low, high = constraint.allowed_range(0, b, device)
        label_logits = logits[:, int(low.min()):int(high.max())]
        labels = label_logits.argmax(-1) + low
        sequences = torch.stack([start[:, 0], labels, constraint.eot.to(device)], dim=1)
        if kwargs.get("return_dict_in_generate", self.generation_config.return_dict_in_generate):
            return GenerateEncoderDecoderOutput(sequences=sequences)
        return sequences


__all__ = [
    "UPSPreTrainedModel",
    "UPSModel",
    "UPSForPoseSequenceModeling",
    "UPSEncoder",
    "UPSDecoder",
    "UPSEncoderOutput",
    "UPSSeq2SeqModelOutput",
    "UPSSeq2SeqLMOutput",
    "UPSTaskConstrainedLogitsProcessor",
]
