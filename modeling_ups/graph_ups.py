"""The graph network of UPS: the joint tokenizer (CTR-GCN style TCN-GCN layers) and the graph blocks of the
encoder's spatial modules, with the skeleton graphs they run on, their per-task normalisation and the row layout
(present persons folded into the batch) every layer computes on.

Shapes: ``N`` person rows, ``C`` channels, ``T`` frames, ``V = config.max_joints`` joints (padded), ``K = 3``
adjacency subsets. Features of padded frames and joints are exactly zero after every layer.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_ups import UPSConfig

NUM_ADJACENCY_SUBSETS = 3  # identity, inward (child -> parent), outward (parent -> child)


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


class RowContext:
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

    def downsample(self, stride: int) -> "RowContext":
        # With an odd kernel and padding (k - 1) // 2, output frame t is centred on input frame t * stride.
        if stride == 1:
            return self
        return RowContext(self.frame_mask[:, ::stride], self.joint_mask, self.adjacency, self.layout_ids, self.task_ids)

    def select(self, rows: torch.Tensor) -> "RowContext":
        return RowContext(
            self.frame_mask[rows], self.joint_mask[rows], self.adjacency[rows], self.layout_ids[rows],
            self.task_ids[rows],
        )


# ----------------------------------------------------------------------------------------------------------------
# Joint tokenizer and spatial modules
# ----------------------------------------------------------------------------------------------------------------


class PersonRows:
    """The present persons of a batch folded into rows (``N`` of them), the layout every encoder layer computes on.

    Args:
        person_mask (`torch.BoolTensor` of shape `(B, M)`): present persons; row ``r`` is person
            ``rows[r] % M`` of sample ``sample[r] = rows[r] // M``. Absent persons are never computed.
    """

    def __init__(self, person_mask: torch.Tensor):
        self.batch, self.persons = person_mask.shape
        self.rows = person_mask.reshape(-1).nonzero().squeeze(1)
        self.sample = self.rows // self.persons

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """(B, M, ...) -> (N, ...)."""
        return values.reshape((-1,) + tuple(values.shape[2:]))[self.rows]

    def scatter(self, row_values: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (B, M, ...), absent persons zero."""
        shape = tuple(row_values.shape[1:])
        out = row_values.new_zeros((self.batch * self.persons,) + shape).index_copy(0, self.rows, row_values)
        return out.view((self.batch, self.persons) + shape)


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
        adjacency, joint_mask, root_weights, parents = self.compute_buffers()
        self.register_buffer("adjacency", adjacency, persistent=False)  # (num_layouts, K, V, V)
        self.register_buffer("joint_mask", joint_mask, persistent=False)  # (num_layouts, V)
        self.register_buffer("root_weights", root_weights, persistent=False)  # (num_layouts, V)
        self.register_buffer("parents", parents, persistent=False)  # (num_layouts, V)

    def _parents(self) -> torch.Tensor:
        """Parent of every joint in its layout's tree, found breadth-first from the layout's first root joint (edges
        are read undirected). The root and padded joints are their own parents, so their bones are zero."""
        parents = torch.arange(self.max_joints).repeat(len(self.layouts), 1)
        for i, v in enumerate(self.layouts):
            neighbours = {j: [] for j in range(v["num_joints"])}
            for a, b in v["edges"]:
                neighbours[a].append(b)
                neighbours[b].append(a)
            frontier, seen = [v["root"][0]], {v["root"][0]}
            while frontier:
                joint = frontier.pop(0)
                for other in neighbours[joint]:
                    if other not in seen:
                        seen.add(other)
                        parents[i, other] = joint
                        frontier.append(other)
        return parents

    def compute_buffers(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
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
        return adjacency, joint_mask, root_weights, self._parents()

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

    def _detected(self, coordinates: torch.Tensor, layout_ids: torch.Tensor) -> torch.Tensor:
        """(N, 1, T, V) joints with coordinates: not all zero, or a root joint (whose zeros in the first frame are the
        processor's centring, see `root_relative`); padded frames must already be zero."""
        is_root = (self.root_weights[layout_ids] > 0)[:, None, None, :]
        has_coordinates = coordinates.ne(0).any(1, keepdim=True)
        return has_coordinates | (is_root & has_coordinates.any(3, keepdim=True))

    def _bones_and_detected(
        self, coordinates: torch.Tensor, layout_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`bones` and (N, 1, T, V) where they are defined: both ends detected."""
        parents = self.parents[layout_ids][:, None, None, :]  # (N, 1, 1, V)
        detected = self._detected(coordinates, layout_ids)
        both_ends = detected & detected.gather(3, parents.expand_as(detected))
        from_parent = coordinates - coordinates.gather(3, parents.expand_as(coordinates))
        return from_parent * both_ends, both_ends

    def bones(self, coordinates: torch.Tensor, layout_ids: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V) vector from each joint's parent to the joint; zero for the root, padded joints and where
        either end is undetected."""
        return self._bones_and_detected(coordinates, layout_ids)[0]

    @staticmethod
    def _displacement(values: torch.Tensor, defined: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V) change of `values` to the next frame; zero at the last frame and wherever `defined` (N, 1, T,
        V) is false in either frame."""
        step = (values[:, :, 1:] - values[:, :, :-1]) * (defined[:, :, 1:] & defined[:, :, :-1])
        return F.pad(step, (0, 0, 0, 1))

    def motion(self, coordinates: torch.Tensor, layout_ids: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V) displacement of each joint to the next frame; zero at the last frame with coordinates and
        where the joint is undetected in either frame."""
        return self._displacement(coordinates, self._detected(coordinates, layout_ids))

    def bone_motion(self, coordinates: torch.Tensor, layout_ids: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V) change of each bone to the next frame; zero at the last frame with coordinates and where
        either end of the bone is undetected in either frame."""
        return self._displacement(*self._bones_and_detected(coordinates, layout_ids))

    def input_streams(self, coordinates: torch.Tensor, layout_ids: torch.Tensor, config: UPSConfig) -> torch.Tensor:
        """The joint tokenizer's input (N, `config.tokenizer_input_channels`, T, V): the streams
        `config.input_streams` names, in its order (the coordinates are zero at padded frames and joints)."""
        derived = {"root_relative": self.root_relative, "bone": self.bones, "motion": self.motion,
                   "bone_motion": self.bone_motion}
        streams = [coordinates if name == "joint" else derived[name](coordinates, layout_ids)
                   for name in config.input_streams]
        return torch.cat(streams, 1) if len(streams) > 1 else streams[0]


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

    def forward(self, hidden_states: torch.Tensor, context: RowContext) -> torch.Tensor:
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

    def forward(self, hidden_states: torch.Tensor, context: "RowContext") -> torch.Tensor:
        # Statistics and normalisation in float32 whatever the activations' dtype (torch's own batch_norm accumulates
        # in float32 for half-precision input too): bfloat16's 8-bit mantissa cannot hold a mean over N * T * V values.
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.float()
        if self.training:
            mean = hidden_states.mean((0, 2, 3))
            var = hidden_states.var((0, 2, 3), unbiased=False)
            with torch.no_grad():
                self._update_running_statistics(hidden_states.detach(), context.task_ids)
            mean, var = mean[None, :, None, None], var[None, :, None, None]
        else:
            mean = self.running_mean[context.task_ids][:, :, None, None]
            var = self.running_var[context.task_ids][:, :, None, None]
        normed = (hidden_states - mean) * torch.rsqrt(var + self.eps)
        return (normed * self.weight[:, None, None] + self.bias[:, None, None]).to(input_dtype)

    def _update_running_statistics(self, hidden_states: torch.Tensor, task_ids: torch.Tensor) -> None:
        """Move each task's running mean and unbiased variance towards those of its own rows, every task of the
        batch at once (one-hot sums, two passes for an exact variance): no per-task indexing or copy of the
        activations and no host sync, so the layer has no data-dependent shapes. Tasks absent from the batch keep
        their statistics."""
        tasks = F.one_hot(task_ids, self.running_mean.shape[0]).to(hidden_states.dtype)  # (N, tasks)
        count = tasks.sum(0) * hidden_states[0, 0].numel()  # values per channel of each task
        task_mean = tasks.t() @ hidden_states.sum((2, 3)) / count.clamp(min=1)[:, None]  # (tasks, C)
        centred = hidden_states - (tasks @ task_mean)[:, :, None, None]
        task_var = tasks.t() @ centred.square().sum((2, 3)) / (count - 1).clamp(min=1)[:, None]
        step = self.momentum * (count > 0).to(hidden_states.dtype)[:, None]
        self.running_mean.lerp_(task_mean.to(self.running_mean.dtype), step.to(self.running_mean.dtype))
        self.running_var.lerp_(task_var.to(self.running_var.dtype), step.to(self.running_var.dtype))


class UPSConvNorm(nn.Module):
    """1x1 (optionally strided) convolution then normalisation: the projection of a residual branch."""

    def __init__(self, config: UPSConfig, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1))
        self.norm = UPSTaskBatchNorm(len(config.tasks), out_channels)

    def forward(self, hidden_states: torch.Tensor, context: "RowContext") -> torch.Tensor:
        return self.norm(self.conv(hidden_states), context)


class UPSGraphBlock(nn.Module):
    """Graph convolution, normalisation, residual, ReLU; output masked. One spatial unit of SEM and of the tokenizer."""

    def __init__(self, config: UPSConfig, in_channels: int, out_channels: int):
        super().__init__()
        self.graph_conv = UPSGraphConvolution(config, in_channels, out_channels)
        self.norm = UPSTaskBatchNorm(len(config.tasks), out_channels)
        self.residual = None if in_channels == out_channels else UPSConvNorm(config, in_channels, out_channels)

    def forward(self, hidden_states: torch.Tensor, context: RowContext) -> torch.Tensor:
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
        self.temporal_norm = UPSTaskBatchNorm(len(config.tasks), out_channels)
        if in_channels == out_channels and stride == 1:
            self.residual = None
        else:
            self.residual = UPSConvNorm(config, in_channels, out_channels, stride)

    def forward(self, hidden_states: torch.Tensor, context: RowContext, out_context: RowContext) -> torch.Tensor:
        out = self.temporal_norm(self.temporal_conv(self.graph(hidden_states, context)), out_context)
        residual = hidden_states if self.residual is None else self.residual(hidden_states, out_context)
        return F.relu(out + residual) * out_context.feature_mask


class UPSJointTokenizer(nn.Module):
    """Stack of TCN-GCN layers (`config.tokenizer_channels`, `config.tokenizer_temporal_strides`) turning
    (N, C, T, V) coordinates into joint tokens (N, d, T', V) with T' = ceil(T / prod(strides)). C is
    `config.tokenizer_input_channels` (the coordinates and their streams, `UPSSkeletonGraph.input_streams`)."""

    def __init__(self, config: UPSConfig):
        super().__init__()
        channels = [config.tokenizer_input_channels] + [int(c) for c in config.tokenizer_channels]
        self.layers = nn.ModuleList(
            UPSTokenizerLayer(config, channels[i], channels[i + 1], int(stride))
            for i, stride in enumerate(config.tokenizer_temporal_strides)
        )
        # A frame's displacement is a few hundredths of the body's size (the processor's unit), so the displacement
        # streams (`config.displacement_input_channels`, the last channels) are normalised to the scale of the others,
        # as the motion-stream models normalise their input (CTR-GCN's data BatchNorm).
        displacement_channels = config.displacement_input_channels
        self.motion_norm = (UPSTaskBatchNorm(len(config.tasks), displacement_channels)
                            if displacement_channels else None)

    def forward(self, hidden_states: torch.Tensor, context: RowContext) -> tuple[torch.Tensor, RowContext]:
        if self.motion_norm is not None:
            channels = self.motion_norm.weight.shape[0]
            motion = self.motion_norm(hidden_states[:, -channels:], context) * context.feature_mask
            hidden_states = torch.cat([hidden_states[:, :-channels], motion], 1)
        for layer in self.layers:
            out_context = context.downsample(layer.stride)
            hidden_states = layer(hidden_states, context, out_context)
            context = out_context
        return hidden_states, context


__all__ = ["PersonRows", "RowContext", "UPSSkeletonGraph", "UPSGraphConvolution", "UPSTaskBatchNorm", "UPSGraphBlock",
           "UPSTokenizerLayer", "UPSJointTokenizer"]
