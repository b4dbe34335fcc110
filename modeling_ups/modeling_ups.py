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
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import logging

from .configuration_ups import UPSConfig
from .generation_ups import CACHE_FIELD, UPSGenerationMixin, UPSTaskConstrainedLogitsProcessor, pose_output_joints
from .graph_ups import (
    PersonRows,
    RowContext,
    UPSGraphBlock,
    UPSGraphConvolution,
    UPSJointTokenizer,
    UPSSkeletonGraph,
    UPSTaskBatchNorm,
)

logger = logging.get_logger(__name__)



# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------



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

    def forward(self, hidden_states: torch.Tensor, context: RowContext, attention_bias: torch.Tensor):
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

    def forward(self, hidden_states, context, attention_bias, choices, gates=None, blocks_on_every_row=None):
        """`choices` (N,) is each row's block. Inference: each block runs only on the rows that chose it, a block
        no row chose does not run. Training also passes `gates` (N, H), the straight-through one-hot weights that
        carry the gradient to the routing embeddings, and `blocks_on_every_row` (H,) bools (see
        `UPSTaskRouter.blocks_on_every_row`): such a block runs on every row and is weighted by its gates (the
        usual Gumbel-softmax estimator, whose gradient reaches every gate); any other block runs on its rows only,
        scaled by their gate (1 in value). Returns the features and, per row, the attention weights of the block it
        used (None unless the attention implementation returns weights)."""
        num_rows = choices.shape[0]
        out = weights = None
        for h, block in enumerate(self.blocks):
            rows = None  # None: every row
            if gates is None or not blocks_on_every_row[h]:
                rows = (choices == h).nonzero().squeeze(1)
                if rows.numel() == 0:
                    continue
                if rows.numel() == num_rows:
                    if gates is None:
                        return block(hidden_states, context, attention_bias)
                    rows = None
            if rows is None:
                features, block_weights = block(hidden_states, context, attention_bias)
            else:
                features, block_weights = block(hidden_states[rows], context.select(rows), attention_bias[rows])
            if gates is not None:
                features = features * (gates[:, h] if rows is None else gates[rows, h])[:, None, None, None]
            if rows is not None:
                if out is None:
                    out = hidden_states.new_zeros(hidden_states.shape[:2] + features.shape[2:])
                out = out.index_add(0, rows, features)
            else:
                out = features if out is None else out + features
            if block_weights is not None:  # each row reports the attention of the block it chose
                own_rows = rows if rows is not None else (choices == h).nonzero().squeeze(1)
                if rows is None:
                    block_weights = block_weights[own_rows]
                if weights is None:
                    weights = block_weights.new_zeros((num_rows,) + block_weights.shape[1:])
                weights = weights.index_copy(0, own_rows, block_weights)
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
    straight-through one-hot choice per sample and layer with Gumbel-softmax at temperature `gumbel_temperature`
    (drawn from `draw_probabilities`); inference takes the argmax (deterministic per task).
    """

    def __init__(self, config: UPSConfig):
        super().__init__()
        self.task_embedding = UPSTaskEmbedding(len(config.tasks), config.routing_embedding_dim)
        self.block_embeddings = UPSBlockEmbeddings(
            config.encoder_layers, config.encoder_blocks_per_layer, config.routing_embedding_dim
        )
        self.gumbel_temperature = float(config.gumbel_temperature)
        self.train_all_blocks = config.routing_train_all_blocks
        self.sharpen_draws = config.routing_sharpen_draws
        self.skip_probability = float(config.routing_skip_probability)

    def scores(self, task_ids: torch.Tensor) -> torch.Tensor:
        """Routing scores s (B, L, H) of tasks `task_ids` (B,)."""
        return torch.einsum("lhq,bq->blh", self.block_embeddings.weight, self.task_embedding(task_ids))

    def forward(self, task_ids: torch.Tensor):
        """Returns scores (B, L, H), decisions (B, L) and gates (B, L, H) (gates are None outside training)."""
        scores = self.scores(task_ids)
        if self.training:
            if self.sharpen_draws:  # hard draw argmax(scores / t + noise): from draw_probabilities
                gates = F.gumbel_softmax(scores / self.gumbel_temperature, tau=1.0, hard=True, dim=-1)
            else:  # hard draw argmax(scores + noise) at any temperature, which only sharpens the soft gates
                gates = F.gumbel_softmax(scores, tau=self.gumbel_temperature, hard=True, dim=-1)
            return scores, gates.argmax(-1), gates
        return scores, scores.argmax(-1), None

    def draw_probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """Each block's chance of being drawn while training (B, L, H): the softmax of the scores, at the current
        temperature with `config.routing_sharpen_draws`, else at 1 (the temperature does not change hard draws)."""
        return (scores / self.gumbel_temperature if self.sharpen_draws else scores).softmax(-1)

    def blocks_on_every_row(self, scores: torch.Tensor, gates: torch.Tensor) -> list:
        """Training: for each layer, which blocks run on every row (`UPSEncoderLayer`), from the batch's routing
        scores and drawn gates (B, L, H). With `config.routing_train_all_blocks` every block, except one the route
        has settled against: no sample of the batch draws it with probability `config.routing_skip_probability` or
        more (`draw_probabilities`), and no sample drew it this step. Its gate is then 0 on every row, so leaving
        it out changes nothing in the forward pass: a block runs on every row or on none, and each block's task
        batch norms see the whole batch, as in the usual estimator. Without `routing_train_all_blocks`, none (each
        row runs its chosen block)."""
        num_layers, num_blocks = scores.shape[1:]
        if not self.train_all_blocks or self.skip_probability == 0.0:  # nothing to read off the scores
            return [[self.train_all_blocks] * num_blocks for _ in range(num_layers)]
        likely = self.draw_probabilities(scores.detach()) >= self.skip_probability
        drawn = gates.detach() > 0
        # One host sync per training step, only when blocks may be skipped.
        return (likely | drawn).any(0).tolist()

    def agreement(self, task_ids: torch.Tensor) -> torch.Tensor:
        """How alike the routes of distinct tasks are: the probability that two of `task_ids` (K >= 2 distinct ids),
        each drawing its block as training does (`draw_probabilities`), draw the same block, averaged over layers and
        pairs of tasks. 1 when every task takes one shared path, 0 when no two tasks share a block; differentiable,
        so a training loop can penalise it to keep tasks from merging into one path (`--routing_separation_weight`)."""
        if task_ids.dim() != 1 or task_ids.unique().numel() != task_ids.numel() or task_ids.numel() < 2:
            raise ValueError(f"agreement needs at least two distinct task ids, got {task_ids.tolist()}")
        probs = self.draw_probabilities(self.scores(task_ids))  # (K, L, H)
        same_block = torch.einsum("alh,blh->abl", probs, probs)  # (K, K, L)
        first, second = torch.triu_indices(len(task_ids), len(task_ids), offset=1, device=task_ids.device)
        return same_block[first, second].mean()


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

    # -- contract checks ------------------------------------------------------------------------------------------
    def _check_inputs(self, pose_values, attention_mask, person_mask, task_ids, layout_ids):
        """The tensors' contract with the model (shapes, id ranges). The data itself (finite values, layouts,
        confidences, frame budget) is validated once, by the feature extractor, before it gets here."""
        config = self.config
        if not torch.is_tensor(pose_values):
            raise TypeError(f"pose_values must be a torch.Tensor (the UPS processor returns one), got "
                            f"{type(pose_values).__name__}")
        if pose_values.ndim == 4:  # (B, T, J, C): a single person per clip
            pose_values = pose_values.unsqueeze(1)
        if pose_values.ndim != 5:
            raise ValueError(
                "pose_values must have shape (batch, persons, frames, joints, coordinates) (or (batch, frames, joints, "
                f"coordinates) for one person), got shape {tuple(pose_values.shape)}"
            )
        b, m, t, j, c = pose_values.shape
        if c != config.input_channels or m > config.max_persons or not 0 < t <= config.max_frames:
            raise ValueError(
                f"pose_values of shape {tuple(pose_values.shape)} does not fit the model: it takes at most "
                f"max_persons={config.max_persons} persons, 1 to max_frames={config.max_frames} frames and "
                f"input_channels={config.input_channels} coordinates (the UPS processor pads 2D input with a zero Z "
                "and resamples long clips)"
            )
        ids = {}
        for name, values, count in (("task_ids", task_ids, len(config.tasks)), ("layout_ids", layout_ids,
                                                                               len(config.layouts))):
            if values is None:
                raise ValueError(f"{name} is required (the UPS processor returns it): one id per sample")
            values = torch.as_tensor(values, device=pose_values.device).long().reshape(-1)
            if values.shape[0] != b or ((values < 0) | (values >= count)).any():
                raise ValueError(f"{name} must hold {b} ids in [0, {count}), got {values.tolist()}")
            ids[name] = values
        largest = max(config.layouts[i]["num_joints"] for i in ids["layout_ids"].tolist())
        # Joints beyond the batch's largest layout are accepted as zero padding (up to max_joints): a row sliced from
        # a batch keeps the batch's padding; non-zero values there would be joints no layout places.
        if j < largest or j > config.max_joints or bool(pose_values[..., largest:, :].ne(0).any()):
            raise ValueError(
                f"pose_values has {j} joints but the largest joint count among the batch's layouts is {largest}: "
                "pad every sample's joints to the largest layout of the batch (joints beyond it must be zero)"
            )
        if attention_mask is None:
            attention_mask = torch.ones(b, t, dtype=torch.long, device=pose_values.device)
        if tuple(attention_mask.shape) != (b, t) or (attention_mask.sum(1) == 0).any():
            raise ValueError(f"attention_mask must have shape {(b, t)} and mark at least one real frame per sample, "
                             f"got shape {tuple(attention_mask.shape)}")
        if person_mask is None:  # persons with any non-zero coordinate (person 0 always)
            person_mask = pose_values.flatten(2).ne(0).any(-1)
            person_mask[:, 0] = True
        if tuple(person_mask.shape) != (b, m) or not person_mask[:, 0].bool().all():
            raise ValueError(f"person_mask must have shape {(b, m)} and mark person 0 present in every sample, got "
                             f"shape {tuple(person_mask.shape)}")
        return pose_values, attention_mask, person_mask.bool(), ids["task_ids"], ids["layout_ids"]

    def encode(
        self, pose_values=None, attention_mask=None, person_mask=None, task_ids=None, layout_ids=None,
        encoder_outputs=None, output_attentions: bool = False, output_hidden_states: bool = False,
    ) -> UPSEncoderOutput:
        """The encoder's output for the inputs, or ``encoder_outputs`` when given (a [`UPSEncoderOutput`], returned as
        it is, or its `to_tuple()`). The one place the model turns "inputs or precomputed encoder outputs" into
        outputs."""
        if encoder_outputs is not None:
            if isinstance(encoder_outputs, UPSEncoderOutput):
                return encoder_outputs
            return UPSEncoderOutput.from_tuple(encoder_outputs)
        if pose_values is None:
            raise ValueError("Pass pose_values (or precomputed encoder_outputs)")
        return self(pose_values, attention_mask, person_mask, task_ids, layout_ids, output_attentions=output_attentions,
                    output_hidden_states=output_hidden_states, return_dict=True)

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
            layout_ids (`torch.LongTensor` of shape `(batch_size,)`): index into `config.layouts`.
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
        persons = PersonRows(person_mask)
        hidden_states, context = self._embed_joints(pose_values, attention_mask, task_ids, layout_ids, persons)
        attention_bias = _additive_key_mask(context.frame_mask, hidden_states.dtype)

        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        if output_hidden_states:
            all_hidden_states, hidden_states = self._report(all_hidden_states, hidden_states, persons)
        scores, decisions, gates = self.routing(task_ids)
        on_every_row = self.routing.blocks_on_every_row(scores, gates) if gates is not None else None
        for layer_idx, layer in enumerate(self.layers):
            route = {"choices": decisions[persons.sample, layer_idx]}
            if gates is not None:
                route.update(gates=gates[persons.sample, layer_idx], blocks_on_every_row=on_every_row[layer_idx])
            hidden_states, weights = layer(hidden_states, context, attention_bias, **route)
            if output_hidden_states:
                all_hidden_states, hidden_states = self._report(all_hidden_states, hidden_states, persons)
            if output_attentions and weights is not None:
                all_attentions += (persons.scatter(weights),)
        if output_attentions and len(all_attentions) < len(self.layers):
            _warn_no_attention_weights(self.config)

        n, d, num_tokens, v = hidden_states.shape
        tokens = self.output_proj(hidden_states.permute(0, 2, 3, 1).reshape(n, num_tokens, v * d))
        tokens = self.layer_norm(tokens) * context.frame_mask[:, :, None]
        output = UPSEncoderOutput(
            last_hidden_state=persons.scatter(tokens).flatten(1, 2),
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            attention_mask=persons.scatter(context.frame_mask.long()).flatten(1, 2),
            router_decisions=decisions,
            router_probs=scores.softmax(-1),
            task_ids=task_ids,
            layout_ids=layout_ids,
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()

    def _embed_joints(self, pose_values, attention_mask, task_ids, layout_ids, persons: PersonRows):
        """Joint tokens (N, d, T', V) of the present persons' rows, with positions added, and their row context."""
        dtype = self.output_proj.weight.dtype
        j, max_joints = pose_values.shape[3], self.config.max_joints
        x = persons.gather(pose_values.to(dtype))
        if j < max_joints:
            x = F.pad(x, (0, 0, 0, max_joints - j))
        x = x.permute(0, 3, 1, 2)  # (N, C, T, V)
        row_layouts = layout_ids[persons.sample]
        context = RowContext(
            attention_mask.to(dtype)[persons.sample], self.graph.joint_mask[row_layouts].to(dtype),
            self.graph.adjacency[row_layouts].to(dtype), row_layouts, task_ids[persons.sample],
        )
        x = self.graph.input_streams(x * context.feature_mask, row_layouts, self.config)
        hidden_states, context = self.joint_tokenizer(x, context)
        positions = self.embed_positions.weight[: hidden_states.shape[2]].t()  # (d, T')
        return (hidden_states + positions[None, :, :, None]) * context.feature_mask, context

    @staticmethod
    def frame_tokens(features: torch.Tensor, persons: PersonRows) -> torch.Tensor:
        """(N, d, T', V) features of the persons' rows -> (B, M * T', V * d) frame tokens, absent persons zero."""
        n, d, t, v = features.shape
        return persons.scatter(features.permute(0, 2, 3, 1).reshape(n, t, v * d)).flatten(1, 2)

    def _report(self, reported: tuple, features: torch.Tensor, persons: PersonRows):
        """``reported`` plus the frame tokens of ``features``, and the features gathered back from those tokens: the
        next layer computes from the reported tensor, so gradients reach it (`retain_grad()` works, as on in-tree
        models' hidden states). Gathering the rows back is exact and keeps the memory layout."""
        tokens = self.frame_tokens(features, persons)
        _, d, t, v = features.shape
        back = persons.gather(tokens.view(persons.batch, persons.persons, t, v, d)).permute(0, 3, 1, 2)
        return reported + (tokens,), back.contiguous() if features.is_contiguous() else back


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
            key, value = self.project_keys_values(key_value_states if is_cross else hidden_states)
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

    def project_keys_values(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (b, heads, length, head_dim) of ``states`` (b, length, d_model)."""
        b, length, _ = states.shape
        key = self.k_proj(states).view(b, length, self.num_heads, self.head_dim).transpose(1, 2)
        value = self.v_proj(states).view(b, length, self.num_heads, self.head_dim).transpose(1, 2)
        return key, value


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
        # With several pose target frames the frame blocks share the position embeddings (joint and axis of a token)
        # and this embedding tells them which frame they lift (UPSFrameBlocks).
        frames = config.pose_estimation_target_frames
        self.embed_target_frames = nn.Embedding(frames, config.d_model) if frames > 1 else None
        # Joints per frame of each (task, layout)'s output, built at the first forward on a device and kept: the
        # frame blocks read it at every decoding step. (Not built here: `from_pretrained` runs __init__ on the meta
        # device, where a plain tensor would hold no data.)
        self._output_joints = None
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
        position_ids: torch.LongTensor | None = None,
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
        positions = self._positions(position_ids, b, length, past_length, input_ids.device)
        blocks = None
        if self.embed_target_frames is not None:
            if self._output_joints is None or self._output_joints.device != input_ids.device:
                self._output_joints = pose_output_joints(self.config).to(input_ids.device)
            blocks = UPSFrameBlocks(self._output_joints[task_ids, layout_ids], self.config)
            # Each frame block opens with the start token, as a sequence of its own does.
            input_ids = input_ids.masked_fill(blocks.opens(positions), self.config.decoder_start_token_id)
            embedded_positions = blocks.within(positions)
        else:
            embedded_positions = positions
        # Without given positions or frame blocks the positions are the ones after the cache: no tensor to read.
        given = blocks is not None or position_ids is not None
        longest = int(embedded_positions.max()) + 1 if given else past_length + length
        if longest > self.config.max_target_positions:
            raise ValueError(
                f"decoder sequence of {longest} positions{' in a frame block' if blocks is not None else ''} exceeds "
                f"max_target_positions={self.config.max_target_positions}"
            )
        position_embeddings = self.embed_positions(embedded_positions)
        if blocks is not None:
            position_embeddings = position_embeddings + self.embed_target_frames(blocks.of(positions))
        token_dropout = self.config.decoder_token_dropout
        if self.config.parallel_decoding:
            # Every position reads only the start token of its sequence or frame block: no output feeds back.
            input_ids = input_ids.masked_fill(input_ids != self.config.decoder_start_token_id, self.config.unk_token_id)
        elif self.training and token_dropout > 0:
            # Hide teacher-forced tokens (never a start token) so that predictions lean on the encoder.
            hidden = torch.rand(input_ids.shape, device=input_ids.device) < token_dropout
            hidden &= input_ids != self.config.decoder_start_token_id
            input_ids = input_ids.masked_fill(hidden, self.config.unk_token_id)
        hidden_states = (
            self.embed_tokens(input_ids)
            + position_embeddings
            + (self.embed_tasks(task_ids) + self.embed_layouts(layout_ids))[:, None]
        )
        hidden_states = F.dropout(hidden_states, p=self.dropout, training=self.training)

        # A teacher-forced batch of whole pose sequences runs each frame block as a row of its own: the same outputs
        # as the block mask, without attention across blocks that the mask would discard (K times less of it).
        folded = (
            blocks is not None and cache is None and attention_mask is None and not output_attentions
            and not output_hidden_states and blocks.foldable(positions)
        )
        if folded:
            hidden_states = blocks.fold(hidden_states)
            encoder_hidden_states = blocks.repeat(encoder_hidden_states)
            encoder_attention_mask = None if encoder_attention_mask is None else blocks.repeat(encoder_attention_mask)
        # Rows that each lie in one block (generate()'s folded rows) need the plain causal mask, not the block mask.
        if blocks is not None and not folded and not blocks.one_per_row(positions, past_length, attention_mask):
            causal_mask = blocks.self_attention_mask(positions, past_length, attention_mask)
        else:
            if attention_mask is None:
                attention_mask = torch.ones(hidden_states.shape[:2], dtype=torch.long, device=input_ids.device)
                if past_length:
                    attention_mask = F.pad(attention_mask, (past_length, 0), value=1)
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
        if folded:
            hidden_states = blocks.unfold(hidden_states)
        if output_hidden_states:
            all_hidden += (hidden_states,)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            **{CACHE_FIELD: cache if use_cache else None},
            hidden_states=all_hidden,
            attentions=all_self,
            cross_attentions=all_cross,
        )

    def memory_cache(self, memory: torch.Tensor, repeats: int) -> EncoderDecoderCache:
        """A decoder cache holding the cross-attention keys and values of ``memory`` (b, T', d_model) for
        ``b * repeats`` rows, each row repeated ``repeats`` times: rows that read the same memory (a clip's frame
        blocks in `generate()`) share one projection instead of computing it ``repeats`` times."""
        cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        for layer_idx, layer in enumerate(self.layers):
            key, value = layer.encoder_attn.project_keys_values(memory)
            cache.cross_attention_cache.update(key.repeat_interleave(repeats, 0), value.repeat_interleave(repeats, 0),
                                               layer_idx)
            cache.is_updated[layer_idx] = True
        return cache

    @staticmethod
    def _positions(position_ids, batch: int, length: int, past_length: int, device) -> torch.Tensor:
        """(batch, length) decoder positions: the next ones after the cache, or the given consecutive ones."""
        steps = torch.arange(past_length, past_length + length, device=device)
        if position_ids is None:
            return steps[None].expand(batch, length)
        position_ids = torch.as_tensor(position_ids, device=device).long()
        # The keys already cached sit at the positions before a row's first one: a row's positions are consecutive.
        if tuple(position_ids.shape) != (batch, length) or not bool(
            ((position_ids == position_ids[:, :1] + (steps - past_length)[None]).all(1)
             & (position_ids[:, 0] >= past_length)).all()
        ):
            raise ValueError(
                f"decoder position_ids must be (batch, length) = {(batch, length)}, consecutive within each row and "
                f"at least the {past_length} cached positions; got shape {tuple(position_ids.shape)}"
            )
        return position_ids


class UPSFrameBlocks:
    r"""
    The decoder sequence of a pose-estimation row with ``K = config.pose_estimation_target_frames > 1`` target frames
    as ``K`` independent frame blocks of ``S = 3 * J`` positions (``J`` joints of the row's output layout).

    Block ``k`` holds positions ``k * S .. k * S + S - 1`` (the end-of-task position joins the last block); it opens
    with the start token and its positions attend only to earlier positions of the same block. So the frames are
    decoded independently from one encoder pass: `generate()` folds the blocks into rows of their own and decodes
    all frames of a clip in ``S`` steps instead of ``K * S``. Every block reads the position embeddings of a
    one-frame sequence (position ``s`` within the block: the same joint and axis in every frame) plus the
    embedding of its frame ``k``. Label rows are one block.
    """

    def __init__(self, joints: torch.Tensor, config: UPSConfig):
        """``joints`` (b,): joints per frame of each row's output, 0 for label rows (`pose_output_joints`)."""
        # A label row (start token and label) is block 0; the padding of a label row in a batch of longer pose rows
        # falls into further blocks, which no real position reads, and stays inside the position table.
        self.length = torch.where(joints > 0, 3 * joints, config.max_target_positions)[:, None]  # (b, 1)
        self.last = config.pose_estimation_target_frames - 1

    def of(self, positions: torch.Tensor) -> torch.Tensor:
        """(b, n) frame block of each position."""
        return torch.div(positions, self.length, rounding_mode="floor").clamp(max=self.last)

    def within(self, positions: torch.Tensor) -> torch.Tensor:
        """(b, n) position of each position inside its block (the end-of-task position is ``S`` of the last block,
        where a one-frame sequence has it)."""
        return positions - self.of(positions) * self.length

    def opens(self, positions: torch.Tensor) -> torch.Tensor:
        """(b, n) True at the first position of blocks 1..K-1 (block 0 opens with the start token already)."""
        return (positions % self.length == 0) & (positions > 0) & (positions // self.length <= self.last)

    def foldable(self, positions: torch.Tensor) -> bool:
        """Whether the rows are whole pose sequences of one joint count from position 0: ``K * S + 1`` positions,
        the end-of-task one included."""
        size = self.length[0, 0]
        whole = (self.last + 1) * size + 1
        same_size = bool((self.length == size).all())
        return same_size and positions.shape[1] == whole and bool((positions[:, 0] == 0).all())

    def fold(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(b, K * S + 1, d) -> (b * K, S + 1, d): row k holds positions ``k * S .. k * S + S``, its block and one
        more. For the last block that one is the end-of-task position; for the others it is the next block's first,
        the row's last position (nothing in the row reads it), whose output `unfold` drops."""
        size, d = int(self.length[0, 0]), hidden_states.shape[-1]
        return hidden_states.unfold(1, size + 1, size).permute(0, 1, 3, 2).reshape(-1, size + 1, d)

    def unfold(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Inverse of `fold`: (b * K, S + 1, d) -> (b, K * S + 1, d)."""
        frames, size, d = self.last + 1, int(self.length[0, 0]), hidden_states.shape[-1]
        blocks = hidden_states.view(-1, frames, size + 1, d)
        return torch.cat([blocks[:, :, :size].reshape(blocks.shape[0], frames * size, d), blocks[:, -1, size:]], 1)

    def repeat(self, values: torch.Tensor) -> torch.Tensor:
        """Per-sample ``values`` (b, ...) for the ``b * K`` folded rows."""
        return values.repeat_interleave(self.last + 1, 0)

    def one_per_row(self, positions, past_length: int, attention_mask=None) -> bool:
        """Whether every row's cached and new positions lie in one block (and nothing is padded): then the block
        mask is the plain causal mask."""
        first_key = positions[:, :1] - past_length
        return attention_mask is None and bool((self.of(first_key) == self.of(positions[:, -1:])).all())

    def self_attention_mask(self, positions, past_length: int, attention_mask=None) -> torch.Tensor:
        """(b, 1, n, past + n) boolean self-attention mask: earlier or same positions of the same block, not padded."""
        steps = torch.arange(past_length + positions.shape[1], device=positions.device)
        keys = (positions[:, :1] - past_length + steps)[:, None, :]  # (b, 1, past + n): rows' positions from the first
        queries = positions[:, :, None]
        allowed = (keys <= queries) & (self.of(keys[:, 0])[:, None, :] == self.of(positions)[:, :, None])
        if attention_mask is not None:
            # A padded query still sees itself, so that no row of the mask is empty (sdpa would return NaN).
            allowed &= attention_mask.bool()[:, None, :] | (keys == queries)
        return allowed[:, None]


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
        elif isinstance(module, UPSTaskBatchNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
        elif isinstance(module, UPSGraphConvolution):
            init.zeros_(module.alpha)
            init.zeros_(module.topology_offset)
        elif isinstance(module, UPSSkeletonGraph):
            names = ("adjacency", "joint_mask", "root_weights", "parents")
            for buffer, value in zip(names, module.compute_buffers()):
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
        decoder_position_ids: torch.LongTensor | None = None,
    ) -> UPSSeq2SeqModelOutput | tuple:
        r"""
        Args:
            pose_values, attention_mask, person_mask, task_ids, layout_ids: see [`UPSEncoder.forward`].
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, target_length)`): decoder input ids.
            decoder_attention_mask (`torch.LongTensor`, *optional*): decoder padding mask (causal masking is built in).
            decoder_position_ids (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*): positions of
                the decoder inputs, consecutive within each row; default: the positions after the cached ones. With
                several pose target frames a row may start at a frame block's first position ([`UPSFrameBlocks`]).
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
        encoder_outputs = self.encoder.encode(
            pose_values, attention_mask, person_mask, task_ids, layout_ids, encoder_outputs=encoder_outputs,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
        )
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
            position_ids=decoder_position_ids,
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
# The model with the vocabulary head
# ----------------------------------------------------------------------------------------------------------------

class UPSForPoseSequenceModeling(UPSPreTrainedModel, UPSGenerationMixin):
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
        decoder_position_ids: torch.LongTensor | None = None,
    ) -> UPSSeq2SeqLMOutput | tuple:
        r"""
        Args:
            pose_values, attention_mask, person_mask, task_ids, layout_ids, decoder_input_ids, decoder_attention_mask,
            decoder_position_ids, encoder_outputs, cache, use_cache, output_attentions, output_hidden_states,
            return_dict:
                see [`UPSModel.forward`]; `decoder_input_ids` default to `labels` shifted right behind `<s>`.
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
        if encoder_outputs is not None:
            encoder_outputs = self.model.encoder.encode(encoder_outputs=encoder_outputs)
        outputs = self.model(
            pose_values,
            attention_mask,
            person_mask,
            task_ids,
            layout_ids,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            decoder_position_ids=decoder_position_ids,
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

    def _token_loss(self, logits, labels):
        """Per-token loss (0 where the label is -100): the NLL, with Gaussian bin smoothing and a regression term
        for coordinate tokens and label smoothing for action labels.

        With ``config.bin_smoothing_sigma > 0`` a coordinate target is the Gaussian over its axis's bins centred
        on the true bin (SimCC-style label smoothing): neighbouring bins are almost right, so they are rewarded
        almost as much, which turns the bin classification into an ordinal target and speeds up learning. With
        ``config.coordinate_regression_weight > 0`` a coordinate token also pays that weight times the distance,
        in bins, between its expected bin (softmax over its axis's bins, as `UPSTokenizer.expected_pose` reads
        it) and the true bin. With ``config.label_smoothing > 0`` an action-label target keeps that share of its
        weight spread uniformly over the label tokens.
        """
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        valid = labels != -100
        safe = labels.clamp(min=0)
        token_loss = -log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        sigma = self.config.bin_smoothing_sigma
        regression_weight = self.config.coordinate_regression_weight
        n_bins, first_bin = self.config.num_bins, self.config.bin_token_offset
        is_bin = valid & (labels >= first_bin) & (labels < first_bin + 3 * n_bins)
        if (sigma > 0 or regression_weight > 0) and bool(is_bin.any()):
            offset = labels[is_bin] - first_bin
            target_bin = offset % n_bins
            bins = torch.arange(n_bins, device=labels.device)
            axis_columns = (first_bin + (offset // n_bins) * n_bins)[:, None] + bins[None, :]
            axis_log_probs = log_probs[is_bin].gather(-1, axis_columns)  # (coordinate tokens, n_bins)
            coordinate_loss = token_loss[is_bin]
            if sigma > 0:
                weights = torch.exp(-0.5 * ((bins[None, :] - target_bin[:, None]) / sigma) ** 2)
                weights = weights / weights.sum(-1, keepdim=True)
                coordinate_loss = -(weights * axis_log_probs).sum(-1)
            if regression_weight > 0:
                # Renormalised over the axis's own bins, as expected_pose reads a coordinate.
                expected_bin = (axis_log_probs.softmax(-1) * bins.to(axis_log_probs.dtype)).sum(-1)
                coordinate_loss = coordinate_loss + regression_weight * (expected_bin - target_bin).abs()
            token_loss = token_loss.masked_scatter(is_bin, coordinate_loss)
        smoothing = self.config.label_smoothing
        if smoothing > 0:
            label_ids = self.config.label_token_ids
            is_label = valid & (labels >= label_ids.start) & (labels < label_ids.stop)
            uniform_nll = -log_probs[is_label][:, label_ids.start:label_ids.stop].mean(-1)
            smoothed = (1 - smoothing) * token_loss[is_label] + smoothing * uniform_nll
            token_loss = token_loss.masked_scatter(is_label, smoothed)
        return token_loss * valid

    def _loss(self, logits, labels, task_ids):
        """Token loss ignoring -100, averaged within each sequence, then over sequences: a pose target (dozens of
        tokens) and a label target (two tokens) weigh the same."""
        labels = labels.to(logits.device)
        counts = (labels != -100).sum(1)
        has_target = counts > 0
        per_sample = self._token_loss(logits, labels).sum(1) / counts.clamp(min=1)

        def reduce(selected):
            selected = selected & has_target
            return per_sample[selected].sum() / selected.sum().clamp(min=1)

        loss = reduce(torch.ones_like(has_target))
        task_losses = {}
        for task_id in task_ids.unique().tolist():
            task_losses[self.config.tasks[task_id]] = reduce(task_ids == task_id).detach()
        return loss, task_losses


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
