"""Generation for UPS: the per-task output constraint, `generate()` with its greedy loop, and `label_scores` (the
label distribution the pipeline and the evaluation read).

Every task's output has a fixed form (one label and its end-of-task token, or ``3 * J * K`` coordinate bins and
EOT_PE), so generation is constrained step by step to that form; the end-of-task token is forced, so greedy decoding
needs one decoder call per chosen token and a batch of label tasks a single one. The ``K`` frames of a pose row are
independent decoder blocks, decoded side by side: ``3 * J`` calls. A decoder that does not read its own outputs
(`config.parallel_decoding`) decodes any batch in one call.
"""

import torch
from transformers import GenerationMixin
from transformers.generation import (
    GenerateBeamEncoderDecoderOutput,
    GenerateEncoderDecoderOutput,
    LogitsProcessor,
    LogitsProcessorList,
)
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.utils import ModelOutput

from .configuration_ups import UPSConfig, task_emits_pose

# transformers 5.24 renamed the decoder cache from `past_key_values` to `cache` (output field, forward keyword and
# `generate()`'s model kwarg). The library's own output classes carry the installed spelling, so UPS outputs extend
# them and are built and read through this name; every forward accepts the cache under both names.
CACHE_FIELD = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"


def pose_output_joints(config: UPSConfig) -> torch.Tensor:
    """(num_tasks, num_layouts) joints per frame a row of that task and input layout emits: those of the layout its
    input is lifted to (`config.pose_target_layouts`) for pose estimation, 0 for the label tasks."""
    joints = torch.tensor(config.pose_target_num_joints)
    is_pose = torch.tensor([task_emits_pose(t) for t in config.tasks])
    return is_pose[:, None] * joints[None, :]


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
        task_ids = torch.as_tensor(task_ids).long().cpu()
        layout_ids = torch.as_tensor(layout_ids).long().cpu()
        joints = pose_output_joints(config)[task_ids, layout_ids]
        self.is_pose = joints > 0
        self.eot = torch.tensor([config.task_eot_token_id(t) for t in config.tasks])[task_ids]
        self.length = torch.where(self.is_pose, 3 * joints * config.pose_estimation_target_frames, 1)
        self.label_range = (config.label_token_ids.start, config.label_token_ids.stop)
        self.bin_offset = config.bin_token_offset
        self.num_bins = config.num_bins

    @property
    def max_new_tokens(self) -> int:
        """Tokens the longest row needs, its EOT included."""
        return int(self.length.max()) + 1

    def allowed_range(self, step, rows: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """[low, high) token ids each of `rows` rows may emit at `step` (rows a multiple of the batch): `(rows,)`
        tables for one step (an int), `(rows, S)` tables for a 1-D tensor of `S` steps."""
        expand = rows // self.length.shape[0]
        steps = torch.as_tensor(step, device=device)
        # One step gives per-row tables; several steps add a step axis after the rows.
        shape = (-1,) + (1,) * steps.dim()
        is_pose, length, eot = (t.repeat_interleave(expand).to(device).view(shape)
                                for t in (self.is_pose, self.length, self.eot))
        axis_low = self.bin_offset + (steps % 3) * self.num_bins
        low = torch.where(is_pose, axis_low, self.label_range[0])
        high = torch.where(is_pose, axis_low + self.num_bins, self.label_range[1])
        done = steps >= length
        return torch.where(done, eot, low), torch.where(done, eot + 1, high)

    def constrain(self, step, scores: torch.Tensor) -> torch.Tensor:
        """``scores`` (rows, vocab) at ``step``, or (rows, S, vocab) at a 1-D tensor of ``S`` steps, with every
        token the row may not emit set to -inf."""
        rows = scores.shape[0]
        if rows % self.length.shape[0]:
            raise ValueError(f"{rows} score rows are not a multiple of the batch of {self.length.shape[0]}")
        low, high = self.allowed_range(step, rows, scores.device)
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        allowed = (vocab >= low.unsqueeze(-1)) & (vocab < high.unsqueeze(-1))
        return scores.masked_fill(~allowed, -float("inf"))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.constrain(input_ids.shape[1] - 1, scores)


# generate() options that ask for assisted (speculative) decoding, which UPS refuses.
_ASSISTED_DECODING_OPTIONS = ("assistant_model", "prompt_lookup_num_tokens", "assistant_early_exit")

# generate() options under which the model's greedy loop can stand in for transformers' greedy search.
_FAST_PATH_OPTIONS = {
    "max_new_tokens", "max_length", "num_beams", "do_sample", "use_cache", "return_dict_in_generate",
    "eos_token_id", "pad_token_id", "output_scores", "output_logits", "output_attentions", "output_hidden_states",
    "num_return_sequences",
}


def _refuse_assisted_decoding(setting) -> None:
    assisted = [name for name in _ASSISTED_DECODING_OPTIONS if setting(name) is not None]
    if assisted:
        raise ValueError(
            f"UPS generate() does not support assisted decoding ({', '.join(assisted)}): every output has the "
            "fixed, task-constrained form of its task, and label tasks already decode in one decoder step"
        )


def _refuse_minimum_lengths_beyond_the_outputs(setting, constraint: UPSTaskConstrainedLogitsProcessor) -> None:
    # generate() bans the EOS until `min_new_tokens` new tokens precede it (`min_length` counts the start token
    # too): beyond the shortest row's fixed length that would force tokens between its output and its EOT.
    shortest = int(constraint.length.min())  # tokens of the shortest row before its end-of-task token
    min_new_tokens, min_length = setting("min_new_tokens") or 0, setting("min_length") or 0
    if min_new_tokens > shortest or min_length > shortest + 1:
        raise ValueError(
            f"min_new_tokens={min_new_tokens} / min_length={min_length} asks for more tokens than a row of this "
            f"batch has ({shortest} before its end-of-task token, after the start token): each task's output has "
            "a fixed length (one label, or 3 bins per joint and frame, then its end-of-task token); leave both unset"
        )


def _pad_after_eos(sequences: torch.Tensor, eos, pad_token_id: int) -> None:
    """Replace, in place, every token after a row's first EOS (the start token excepted) with `pad_token_id`."""
    eos = torch.tensor([eos] if isinstance(eos, int) else list(eos), device=sequences.device)
    is_eos = torch.isin(sequences[:, 1:], eos)
    after_eos = (is_eos.cumsum(1) - is_eos.long()) > 0
    sequences[:, 1:].masked_fill_(after_eos, pad_token_id)


class UPSGenerationMixin(GenerationMixin):
    """`generate()` with the task constraint and the one-step label path, and `label_scores`. Mixed into
    [`UPSForPoseSequenceModeling`], whose `get_encoder()` returns a [`UPSEncoder`] (its `encode` runs the encoder
    once or takes given encoder outputs)."""

    @torch.no_grad()
    def label_scores(self, encoder_outputs=None, **encoder_inputs) -> torch.Tensor:
        r"""
        Logits of the action-label tokens at the first decoding step, `(batch_size, config.num_label_tokens)` float32:
        the distribution greedy and beam decoding take a label task's label from (the end-of-task token after it is
        forced). Column ``i`` is label token ``config.label_token_ids[i]``.

        Args:
            encoder_outputs ([`UPSEncoderOutput`], *optional*): skips the encoder.
            encoder_inputs: `pose_values`, `attention_mask`, `person_mask`, `task_ids`, `layout_ids` (the
                processor's output) when `encoder_outputs` is not given.
        """
        encoder_outputs = self.get_encoder().encode(encoder_outputs=encoder_outputs, **encoder_inputs)
        memory = encoder_outputs.last_hidden_state
        start = torch.full((memory.shape[0], 1), self.config.decoder_start_token_id, dtype=torch.long,
                           device=memory.device)
        outputs = self(encoder_outputs=encoder_outputs, decoder_input_ids=start, use_cache=False, return_dict=True)
        labels = self.config.label_token_ids
        return outputs.logits[:, -1, labels.start : labels.stop].float()

    @torch.no_grad()
    def sequence_scores(self, sequences: torch.LongTensor, encoder_outputs=None, **encoder_inputs) -> torch.Tensor:
        r"""
        Logits of every step of generated `sequences`, `(batch_size, length - 1, vocab_size)` float32: step ``s`` is
        the distribution token ``s + 1`` of a row was chosen from (before the task constraint), recomputed in one
        teacher-forced decoder call over the tokens greedy decoding fed back, so it costs one decoder call whatever
        the decoding took. [`UPSTokenizer.expected_pose`] reads a pose row's steps (the processor's
        `post_process(..., pose_decoding="expectation")`).

        Args:
            sequences (`torch.LongTensor` `(batch_size, length)`): `generate()`'s output, starting with `<s>`.
            encoder_outputs ([`UPSEncoderOutput`], *optional*): skips the encoder.
            encoder_inputs: `pose_values`, `attention_mask`, `person_mask`, `task_ids`, `layout_ids` (the
                processor's output) when `encoder_outputs` is not given.
        """
        encoder_outputs = self.get_encoder().encode(encoder_outputs=encoder_outputs, **encoder_inputs)
        outputs = self(encoder_outputs=encoder_outputs, decoder_input_ids=sequences[:, :-1], use_cache=False,
                       return_dict=True)
        return outputs.logits.float()

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

        Greedy decoding (one beam, no sampling, no per-step outputs requested, the cache on) runs the model's own
        loop: one decoder call per chosen token, the forced end-of-task token appended without a model call (so a
        label batch takes one decoder call); a batch of pose rows with ``K > 1`` target frames of one joint count
        decodes the ``K`` frame blocks side by side (``3 * J`` calls); with `config.parallel_decoding` any batch
        takes one call. It returns exactly the tokens transformers' greedy search would.

        Args:
            pose_values, task_ids, layout_ids, attention_mask, person_mask:
                as in [`UPSForPoseSequenceModeling.forward`].
        """
        user_config = kwargs.get("generation_config")

        def setting(name):
            return self._generation_setting(kwargs, name)

        _refuse_assisted_decoding(setting)
        if pose_values is None and "inputs" in kwargs:
            pose_values = kwargs.pop("inputs")
        given = kwargs.pop("encoder_outputs", None)
        if isinstance(given, ModelOutput):
            # transformers' generate() expands encoder outputs for beams and returned sequences in place: work on a
            # shallow copy, so that the caller can use theirs again.
            given = type(given)(**given)
        encoder_outputs = self.get_encoder().encode(
            pose_values, attention_mask, person_mask, task_ids, layout_ids, encoder_outputs=given,
            output_attentions=bool(setting("output_attentions")),
            output_hidden_states=bool(setting("output_hidden_states")),
        )
        task_ids = encoder_outputs.task_ids
        layout_ids = encoder_outputs.layout_ids
        constraint = UPSTaskConstrainedLogitsProcessor(self.config, task_ids, layout_ids)
        _refuse_minimum_lengths_beyond_the_outputs(setting, constraint)

        if user_config is None or user_config.eos_token_id is None:
            kwargs.setdefault("eos_token_id", list(self.config.eot_token_ids))
        if "max_length" not in kwargs and "max_new_tokens" not in kwargs and (
            user_config is None or user_config.max_new_tokens is None
        ):
            kwargs["max_new_tokens"] = constraint.max_new_tokens

        if self._fast_path_applies(constraint, kwargs):
            return self._generate_greedy(encoder_outputs, constraint, kwargs)

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
        # pad them as greedy search does. `eos_token_id=None` generates to the maximum length; each row still ends
        # at its task's EOT.
        eos = kwargs.get("eos_token_id", user_config.eos_token_id if user_config is not None else None)
        sequences = outputs if torch.is_tensor(outputs) else outputs.sequences
        _pad_after_eos(sequences, list(self.config.eot_token_ids) if eos is None else eos, self.config.pad_token_id)
        return outputs

    def _fast_path_applies(self, constraint: UPSTaskConstrainedLogitsProcessor, kwargs: dict) -> bool:
        def setting(name):
            return self._generation_setting(kwargs, name)

        if not set(kwargs) <= _FAST_PATH_OPTIONS or not setting("use_cache"):
            return False
        if (setting("num_beams") or 1) != 1 or setting("do_sample") or (setting("num_return_sequences") or 1) != 1:
            return False
        if setting("output_attentions") or setting("output_hidden_states"):
            return False
        # Per-step scores come free only from the one call of a decoder that does not read its outputs; the other
        # fast paths force the end-of-task step without a model call, so they have no scores for it.
        if not self.config.parallel_decoding and (setting("output_scores") or setting("output_logits")):
            return False
        eos = kwargs["eos_token_id"]
        # Without EOS ids generation runs to the maximum length, which the fast path does not reproduce.
        eos = set() if eos is None else {eos} if isinstance(eos, int) else set(eos)
        if not set(constraint.eot.tolist()) <= eos:
            return False
        if "max_new_tokens" in kwargs:
            return kwargs["max_new_tokens"] >= constraint.max_new_tokens
        return kwargs["max_length"] >= constraint.max_new_tokens + 1

    def _generation_setting(self, kwargs: dict, name: str):
        """A generate() option: the call's, else its `generation_config`'s if it passes one, else the model's."""
        user_config = kwargs.get("generation_config")
        settings = user_config if user_config is not None else self.generation_config
        return kwargs.get(name, getattr(settings, name, None))

    @torch.no_grad()
    def _generate_greedy(self, encoder_outputs, constraint: UPSTaskConstrainedLogitsProcessor, kwargs):
        """generate()'s greedy tokens without its per-step machinery (see `_greedy_tokens`); with
        `config.parallel_decoding`, also its per-step `scores` and `logits` when asked for."""
        if not self._generation_setting(kwargs, "return_dict_in_generate"):
            return self._greedy_tokens(encoder_outputs, constraint)
        want_scores, want_logits = (bool(self._generation_setting(kwargs, name))
                                    for name in ("output_scores", "output_logits"))
        if not (want_scores or want_logits):
            return GenerateEncoderDecoderOutput(sequences=self._greedy_tokens(encoder_outputs, constraint))
        tokens, logits = self._generate_in_one_call(encoder_outputs, constraint, with_logits=True)
        steps = torch.arange(logits.shape[1], device=logits.device)
        return GenerateEncoderDecoderOutput(
            sequences=tokens,
            scores=tuple(constraint.constrain(steps, logits).unbind(1)) if want_scores else None,
            logits=tuple(logits.unbind(1)) if want_logits else None,
        )

    @torch.no_grad()
    def generate_with_step_logits(self, encoder_outputs, **generate_kwargs) -> tuple[torch.LongTensor, torch.Tensor]:
        r"""
        `generate()`'s sequences and the logits each of their tokens was chosen from, `(batch_size, length - 1,
        vocab_size)` float32 as [`~UPSGenerationMixin.sequence_scores`] gives them, in the fewest decoder calls:
        with `config.parallel_decoding`, greedy decoding's one call already computed them (`generate(
        output_logits=True)`); otherwise they are recomputed in one teacher-forced call after decoding, which costs
        less than transformers' per-step loop. [`UPSTokenizer.expected_pose`] reads a pose row's steps.

        Args:
            encoder_outputs ([`UPSEncoderOutput`]): the encoder's outputs for the batch.
            generate_kwargs: further `generate()` options.
        """
        if self.config.parallel_decoding:
            outputs = self.generate(encoder_outputs=encoder_outputs, output_logits=True, return_dict_in_generate=True,
                                    **generate_kwargs)
            # Beam search's logits follow the beams at each step, not the returned sequences.
            if not isinstance(outputs, GenerateBeamEncoderDecoderOutput):
                return outputs.sequences, torch.stack(outputs.logits, dim=1).float()
            sequences = outputs.sequences
        else:
            sequences = self.generate(encoder_outputs=encoder_outputs, **generate_kwargs)
        return sequences, self.sequence_scores(sequences, encoder_outputs=encoder_outputs)

    def _greedy_tokens(self, encoder_outputs, constraint: UPSTaskConstrainedLogitsProcessor) -> torch.Tensor:
        """Every step's token is the argmax over the tokens the row may emit, the decoder cache carries over from
        step to step, and a step at which every unfinished row's token is forced (its end-of-task token) runs no
        model at all, so a batch of label tasks takes one decoder call. A decoder that does not read its outputs
        (`config.parallel_decoding`) takes one call for every row."""
        if self.config.parallel_decoding:
            return self._generate_in_one_call(encoder_outputs, constraint)
        frames = self.config.pose_estimation_target_frames
        if frames > 1 and bool(constraint.is_pose.all()) and bool((constraint.length == constraint.length[0]).all()):
            return self._generate_frame_blocks(encoder_outputs, constraint, frames)
        memory = encoder_outputs.last_hidden_state
        rows, device = memory.shape[0], memory.device
        eot, length = constraint.eot.to(device), constraint.length.to(device)
        # Row r emits its EOT at step length[r] (the constraint allows nothing else there) and <pad> after it, so
        # which rows are finished follows from the step: no per-step state, no device sync.
        longest = int(constraint.length.max())
        tokens = torch.full((rows, 1), self.config.decoder_start_token_id, dtype=torch.long, device=device)
        cache = None
        for step in range(longest + 1):
            if step < longest:
                outputs = self(encoder_outputs=encoder_outputs, decoder_input_ids=tokens[:, -1:] if step else tokens,
                               cache=cache, use_cache=step + 1 < longest, return_dict=True)
                cache = getattr(outputs, CACHE_FIELD)
                chosen = constraint.constrain(step, outputs.logits[:, -1].float()).argmax(-1)
            else:  # every row's token is forced: its EOT, or <pad> after it
                chosen = eot
            chosen = torch.where(step > length, self.config.pad_token_id, chosen)
            tokens = torch.cat([tokens, chosen[:, None]], dim=1)
        return tokens

    def _generate_in_one_call(self, encoder_outputs, constraint: UPSTaskConstrainedLogitsProcessor,
                              with_logits: bool = False):
        """Greedy tokens of a decoder that does not read its outputs (`config.parallel_decoding`): its inputs are
        known before anything is chosen (the start token, then `<unk>`), so one teacher-forced-shaped call over the
        longest row's length gives every step's logits; each row takes its constrained argmax, then its EOT, then
        `<pad>`. ``with_logits`` also returns every step's logits `(rows, longest + 1, vocab)` float32, the last
        step's too (where every row's token is forced), from one more position of the same call."""
        memory = encoder_outputs.last_hidden_state
        rows, device = memory.shape[0], memory.device
        eot, length = constraint.eot.to(device), constraint.length.to(device)
        longest = int(constraint.length.max())
        inputs = torch.full((rows, longest + int(with_logits)), self.config.unk_token_id, dtype=torch.long,
                            device=device)
        inputs[:, 0] = self.config.decoder_start_token_id
        logits = self(encoder_outputs=encoder_outputs, decoder_input_ids=inputs, use_cache=False,
                      return_dict=True).logits.float()
        steps = torch.arange(longest + 1, device=device)
        chosen = constraint.constrain(steps[:-1], logits[:, :longest]).argmax(-1)  # every step's constraint at once
        body = torch.cat([chosen, eot[:, None]], dim=1)
        body = torch.where(steps == length[:, None], eot[:, None], body)
        body = torch.where(steps > length[:, None], self.config.pad_token_id, body)
        start = torch.full((rows, 1), self.config.decoder_start_token_id, dtype=torch.long, device=device)
        tokens = torch.cat([start, body], dim=1)
        return (tokens, logits) if with_logits else tokens

    def _generate_frame_blocks(self, encoder_outputs, constraint: UPSTaskConstrainedLogitsProcessor, frames: int):
        """Greedy tokens of pose rows with ``frames`` target frames of the same joint count: the frames' decoder
        blocks (`UPSFrameBlocks`) are independent, so each becomes a row of its own over the same encoder output
        and all are decoded together, ``3 * J`` steps for the ``3 * J * frames`` tokens of a row."""
        memory = encoder_outputs.last_hidden_state
        rows, device = memory.shape[0], memory.device
        block = int(constraint.length[0]) // frames
        folded = type(encoder_outputs)(
            last_hidden_state=memory.repeat_interleave(frames, 0),
            attention_mask=encoder_outputs.attention_mask.repeat_interleave(frames, 0),
            task_ids=encoder_outputs.task_ids.repeat_interleave(frames, 0),
            layout_ids=encoder_outputs.layout_ids.repeat_interleave(frames, 0),
        )
        # Row r * frames + k lifts frame k of clip r: its block's positions start at k * block.
        first_position = (torch.arange(frames, device=device) * block).repeat(rows)[:, None]
        inputs = torch.full((rows * frames, 1), self.config.decoder_start_token_id, dtype=torch.long, device=device)
        # A clip's blocks read the same memory: its cross-attention keys and values are projected once per clip.
        chosen, cache = [], self.get_decoder().memory_cache(memory, frames)
        for step in range(block):
            outputs = self(encoder_outputs=folded, decoder_input_ids=inputs, decoder_position_ids=first_position + step,
                           cache=cache, use_cache=step + 1 < block, return_dict=True)
            cache = getattr(outputs, CACHE_FIELD)
            # The constraint's tables repeat per clip for the folded rows; step s allows axis s % 3 in every block.
            inputs = constraint.constrain(step, outputs.logits[:, -1].float()).argmax(-1)[:, None]
            chosen.append(inputs)
        start = torch.full((rows, 1), self.config.decoder_start_token_id, dtype=torch.long, device=device)
        body = torch.cat(chosen, dim=1).view(rows, frames * block)
        return torch.cat([start, body, constraint.eot.to(device)[:, None]], dim=1)


__all__ = ["UPSTaskConstrainedLogitsProcessor", "UPSGenerationMixin", "pose_output_joints"]
