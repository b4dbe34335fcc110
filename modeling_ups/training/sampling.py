"""Deterministic, resumable data order for multi-task training.

The paper rotates tasks every iteration. Here the task of step ``s`` is ``order[s % len(order)]`` and the
``k``-th batch of a task is a pure function of (seed, task, k), so a run resumed at step ``s`` reads exactly the
batches an uninterrupted run would have read: nothing is skipped or read twice, and no data-loader state needs
saving. Each rank reads its own slice of every global batch (data parallel without a distributed sampler).
"""

from typing import Iterator, List, Sequence

import numpy as np
from torch.utils.data import Sampler


class TaskRotation:
    """Which task each optimisation step trains: ``order[step % len(order)]``."""

    def __init__(self, order: Sequence[str]):
        if not order:
            raise ValueError("TaskRotation needs at least one task")
        self.order = list(order)

    def task_at(self, step: int) -> str:
        return self.order[step % len(self.order)]

    def batches_before(self, task: str, step: int) -> int:
        """How many batches of ``task`` steps ``0 .. step - 1`` consumed."""
        full, rest = divmod(step, len(self.order))
        per_cycle = self.order.count(task)
        return full * per_cycle + self.order[:rest].count(task)


class ResumableBatchSampler(Sampler[List[tuple]]):
    """Endless stream of index batches over ``num_samples`` items, reshuffled every epoch.

    Args:
        num_samples: dataset size.
        global_batch_size: samples per optimisation step summed over all ranks.
        seed: shuffling seed; epoch ``e`` uses permutation ``default_rng((seed, e))``.
        rank, world_size: this process's slice of every global batch.
        start_batch: index of the first global batch to yield (for resuming).
    """

    def __init__(self, num_samples: int, global_batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, start_batch: int = 0):
        if num_samples <= 0:
            raise ValueError("ResumableBatchSampler: the dataset is empty")
        if global_batch_size % world_size:
            raise ValueError(f"global batch size {global_batch_size} is not divisible by {world_size} processes")
        self.num_samples, self.global_batch_size = num_samples, global_batch_size
        self.seed, self.rank, self.world_size, self.start_batch = seed, rank, world_size, start_batch

    def global_batch(self, k: int) -> np.ndarray:
        """Indices of global batch ``k``: batches run through epoch permutations back to back."""
        start = k * self.global_batch_size
        out = []
        while len(out) < self.global_batch_size:
            epoch, offset = divmod(start + len(out), self.num_samples)
            perm = np.random.default_rng((self.seed, epoch)).permutation(self.num_samples)
            out.extend(perm[offset: offset + self.global_batch_size - len(out)].tolist())
        return np.asarray(out)

    def __iter__(self) -> Iterator[List[tuple]]:
        """Yields this rank's ``(stream_position, index)`` keys of each global batch.

        The stream position (the sample's place in the endless shuffled stream) seeds per-sample randomness in
        the collators (see ``training.data.KeyedRows``), so it does not depend on how the stream is split into
        ranks or accumulation steps.
        """
        per_rank = self.global_batch_size // self.world_size
        k = self.start_batch
        while True:
            batch = self.global_batch(k)
            first = k * self.global_batch_size + self.rank * per_rank
            mine = batch[self.rank * per_rank: (self.rank + 1) * per_rank]
            yield [(first + j, int(i)) for j, i in enumerate(mine)]
            k += 1

    def __len__(self) -> int:  # one epoch's worth; the stream itself is endless
        return max(1, self.num_samples // self.global_batch_size)
