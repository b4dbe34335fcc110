"""Tests of the UPS model (modeling_ups/modeling_ups.py) on tiny configs, CPU only."""

import copy
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModel
from transformers.generation import GenerateEncoderDecoderOutput, LogitsProcessorList

from modeling_ups import UPSConfig, UPSForPoseSequenceModeling, UPSTaskConstrainedLogitsProcessor
from modeling_ups.graph_ups import UPSTokenizerLayer
from modeling_ups.utils.text_embeddings import init_vocabulary_embeddings
from ups_checkpoint import randomise_untrained_parts

TASKS = ("action_recognition_3d", "action_recognition_2d", "pose_estimation_3d", "early_action_prediction_3d")


def tiny_config(**overrides) -> UPSConfig:
    kwargs = dict(
        num_label_tokens=7, num_bins=8, max_frames=24, tokenizer_channels=[4, 4, 8],
        tokenizer_temporal_strides=[1, 2, 2], temporal_kernel_size=3, encoder_layers=2, encoder_blocks_per_layer=2,
        encoder_attention_heads=2, encoder_attention_dim=16, encoder_ffn_dim=16, routing_embedding_dim=8, d_model=16,
        decoder_layers=2, decoder_attention_heads=2, decoder_ffn_dim=32, dropout=0.0,
    )
    kwargs.update(overrides)
    return UPSConfig(**kwargs)


def build_model(config=None, seed=0, attn_implementation="sdpa") -> UPSForPoseSequenceModeling:
    """A tiny model whose zero-initialised parts (topology refinement scale alpha, topology offsets) and batch-norm
    statistics are randomised, so that every branch influences the outputs as in a trained model."""
    torch.manual_seed(seed)
    config = copy.deepcopy(config or tiny_config())  # _from_config records the attention implementation on it
    model = UPSForPoseSequenceModeling._from_config(config, attn_implementation=attn_implementation)
    return randomise_untrained_parts(model)


def make_batch(config, samples, seed=0):
    """samples: list of dicts with layout, frames, persons, task, two_d. Pads frames, persons and joints."""
    generator = torch.Generator().manual_seed(seed)
    joints = [config.layouts[config.layout_id(s["layout"])]["num_joints"] for s in samples]
    b, t, j, m = len(samples), max(s["frames"] for s in samples), max(joints), max(s.get("persons", 1) for s in samples)
    poses = torch.zeros(b, m, t, j, 3)
    attention_mask = torch.zeros(b, t, dtype=torch.long)
    person_mask = torch.zeros(b, m, dtype=torch.long)
    for i, s in enumerate(samples):
        p = s.get("persons", 1)
        values = torch.randn(p, s["frames"], joints[i], 3, generator=generator)
        if s.get("two_d"):
            values[..., 2] = 0
        poses[i, :p, : s["frames"], : joints[i]] = values
        attention_mask[i, : s["frames"]] = 1
        person_mask[i, :p] = 1
    return {
        "pose_values": poses,
        "attention_mask": attention_mask,
        "person_mask": person_mask,
        "task_ids": torch.tensor([config.task_id(s.get("task", TASKS[0])) for s in samples]),
        "layout_ids": torch.tensor([config.layout_id(s["layout"]) for s in samples]),
    }


def unbatch(batch, i, config):
    """Sample i of a padded batch, unpadded (own frames, persons and joints)."""
    frames = int(batch["attention_mask"][i].sum())
    persons = int(batch["person_mask"][i].sum())
    joints = config.layouts[int(batch["layout_ids"][i])]["num_joints"]
    return {
        "pose_values": batch["pose_values"][i : i + 1, :persons, :frames, :joints],
        "attention_mask": batch["attention_mask"][i : i + 1, :frames],
        "person_mask": batch["person_mask"][i : i + 1, :persons],
        "task_ids": batch["task_ids"][i : i + 1],
        "layout_ids": batch["layout_ids"][i : i + 1],
    }


def expected_length(config, task, layout):
    if task == "pose_estimation_3d":
        return 3 * config.layouts[config.layout_id(layout)]["num_joints"] * config.pose_estimation_target_frames
    return 1


def make_labels(config, batch, seed=0):
    """Well-formed random targets for each sample, padded with -100."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for task_id, layout_id in zip(batch["task_ids"].tolist(), batch["layout_ids"].tolist()):
        task = config.tasks[task_id]
        if task == "pose_estimation_3d":
            n = expected_length(config, task, config.layout_names[layout_id])
            axes = torch.arange(n) % 3
            bins = torch.randint(config.num_bins, (n,), generator=generator)
            ids = config.bin_token_offset + axes * config.num_bins + bins
        else:
            ids = config.label_token_offset + torch.randint(config.num_label_tokens, (1,), generator=generator)
        rows.append(ids.tolist() + [config.task_eot_token_id(task)])
    width = max(len(r) for r in rows)
    return torch.tensor([r + [-100] * (width - len(r)) for r in rows])


MIXED = [  # one sample per task, mixed layouts, persons, frame counts and 2D/3D input
    dict(layout="ntu25", frames=17, persons=2, task="action_recognition_3d"),
    dict(layout="openpose18", frames=11, persons=1, task="action_recognition_2d", two_d=True),
    dict(layout="humaneva15", frames=9, persons=1, task="pose_estimation_3d", two_d=True),
    dict(layout="kinect_v1_20", frames=20, persons=2, task="early_action_prediction_3d"),
]


@pytest.fixture(scope="module")
def config():
    return tiny_config()


@pytest.fixture(scope="module")
def model(config):
    return build_model(config)


# ------------------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("layout", tiny_config().layout_names)
@pytest.mark.parametrize("persons", [1, 2])
def test_output_shapes_per_layout(model, config, layout, persons):
    samples = [dict(layout=layout, frames=13, persons=persons), dict(layout=layout, frames=6, persons=1, two_d=True)]
    batch = make_batch(config, samples)
    labels = make_labels(config, batch)
    out = model(**batch, labels=labels, output_router_decisions=True)
    tokens = math.ceil(13 / config.temporal_downsampling)
    m = batch["pose_values"].shape[1]
    assert out.logits.shape == (2, labels.shape[1], config.vocab_size)
    assert out.encoder_last_hidden_state.shape == (2, m * tokens, config.d_model)
    assert out.encoder_attention_mask.shape == (2, m * tokens)
    # Real tokens: ceil(frames / downsampling) per present person.
    assert out.encoder_attention_mask.sum(1).tolist() == [persons * tokens, math.ceil(6 / config.temporal_downsampling)]
    assert (out.encoder_last_hidden_state[out.encoder_attention_mask == 0] == 0).all()
    assert out.router_decisions.shape == (2, config.encoder_layers) and out.router_decisions.dtype == torch.long
    assert out.router_probs.shape == (2, config.encoder_layers, config.encoder_blocks_per_layer)
    assert torch.isfinite(out.loss) and set(out.task_losses) == {TASKS[0]}


def test_rank4_input_is_one_person(model, config):
    batch = make_batch(config, [dict(layout="h36m17", frames=10)])
    five = model(**batch, decoder_input_ids=torch.ones(1, 1, dtype=torch.long))
    four = model(pose_values=batch["pose_values"][:, 0], attention_mask=batch["attention_mask"],
                 task_ids=batch["task_ids"], layout_ids=batch["layout_ids"],
                 decoder_input_ids=torch.ones(1, 1, dtype=torch.long))
    torch.testing.assert_close(four.logits, five.logits)


def test_layout_ids_are_required(model, config):
    """The processor resolves the layout (one home for that rule); the model takes its id and never guesses."""
    batch = make_batch(config, [dict(layout="ntu25", frames=8)])
    batch.pop("layout_ids")
    with pytest.raises(ValueError, match="layout_ids is required"):
        model.get_encoder()(**batch)


def test_default_person_mask_skips_all_zero_persons(model, config):
    batch = make_batch(config, [dict(layout="ntu25", frames=8, persons=1), dict(layout="ntu25", frames=8, persons=2)])
    out = model.get_encoder()(**{k: v for k, v in batch.items() if k != "person_mask"})
    tokens = math.ceil(8 / config.temporal_downsampling)
    assert out.attention_mask.sum(1).tolist() == [tokens, 2 * tokens]


# ------------------------------------------------------------------------------------------------ padding


def test_padded_batch_equals_one_by_one(model, config):
    batch = make_batch(config, MIXED)
    labels = make_labels(config, batch)
    batched = model(**batch, labels=labels)
    for i in range(len(MIXED)):
        single_batch = unbatch(batch, i, config)
        n = int((labels[i] != -100).sum())
        single = model(**single_batch, labels=labels[i : i + 1, :n])
        torch.testing.assert_close(batched.logits[i, :n], single.logits[0], atol=1e-5, rtol=1e-5)
        mask = batched.encoder_attention_mask[i].bool()
        torch.testing.assert_close(
            batched.encoder_last_hidden_state[i][mask],
            single.encoder_last_hidden_state[0][single.encoder_attention_mask[0].bool()], atol=1e-5, rtol=1e-5,
        )


def test_values_in_padding_are_ignored(model, config):
    batch = make_batch(config, [dict(layout="h36m17", frames=9, persons=1), dict(layout="ntu25", frames=14, persons=2)])
    noisy = dict(batch, pose_values=batch["pose_values"].clone())
    noisy["pose_values"][0, :, 9:] = 5.0  # padded frames
    noisy["pose_values"][0, :, :, 17:] = -3.0  # joints beyond h36m17's 17
    noisy["pose_values"][0, 1] = 7.0  # the absent second person
    decoder_input_ids = torch.ones(2, 1, dtype=torch.long)
    torch.testing.assert_close(model(**noisy, decoder_input_ids=decoder_input_ids).logits,
                               model(**batch, decoder_input_ids=decoder_input_ids).logits)


def test_features_of_padding_are_zero_after_every_layer(model, config):
    batch = make_batch(config, [dict(layout="h36m17", frames=9), dict(layout="ntu25", frames=14, persons=2)])
    outputs = []

    def record(module, args, out):
        # Tokenizer layers get (features, context, output context) and return features; encoder blocks get
        # (features, context, bias) and return (features, attention weights).
        if isinstance(module, UPSTokenizerLayer):
            outputs.append((out, args[2].feature_mask))
        else:
            outputs.append((out[0], args[1].feature_mask))

    encoder = model.get_encoder()
    modules = list(encoder.joint_tokenizer.layers) + [b for layer in encoder.layers for b in layer.blocks]
    handles = [m.register_forward_hook(record) for m in modules]
    try:
        encoder(**batch)
    finally:
        for handle in handles:
            handle.remove()
    assert len(outputs) == len(config.tokenizer_channels) + config.encoder_layers
    for features, feature_mask in outputs:
        padded = (feature_mask == 0).expand_as(features)
        assert padded.any() and features[~padded].abs().sum() > 0
        assert (features[padded] == 0).all()


def test_generate_batched_equals_one_by_one(model, config):
    batch = make_batch(config, MIXED, seed=1)
    batched = model.generate(**batch)
    for i in range(len(MIXED)):
        single = model.generate(**unbatch(batch, i, config))[0]
        assert batched[i, : single.shape[0]].tolist() == single.tolist()
        assert (batched[i, single.shape[0] :] == config.pad_token_id).all()


# ------------------------------------------------------------------------------------------------ generation


def check_well_formed(config, sequences, batch):
    """label then EOT for label tasks; 3*J*K bins in x, y, z cadence then EOT_PE for pose estimation; then pads."""
    assert (sequences[:, 0] == config.decoder_start_token_id).all()
    for row, task_id, layout_id in zip(sequences.tolist(), batch["task_ids"].tolist(), batch["layout_ids"].tolist()):
        task = config.tasks[task_id]
        body = row[1:]
        n = expected_length(config, task, config.layout_names[layout_id])
        if task == "pose_estimation_3d":
            for i, token in enumerate(body[:n]):
                low = config.bin_token_offset + (i % 3) * config.num_bins
                assert low <= token < low + config.num_bins, (i, token)
        else:
            assert config.label_token_offset <= body[0] < config.label_token_offset + config.num_label_tokens
        assert body[n] == config.task_eot_token_id(task)
        assert all(token == config.pad_token_id for token in body[n + 1 :])


@pytest.mark.parametrize("num_beams", [1, 2])
def test_generate_cache_equals_no_cache_all_tasks(model, config, num_beams):
    batch = make_batch(config, MIXED, seed=2)
    with_cache = model.generate(**batch, num_beams=num_beams, use_cache=True)
    without = model.generate(**batch, num_beams=num_beams, use_cache=False)
    assert with_cache.tolist() == without.tolist()
    check_well_formed(config, with_cache, batch)


@pytest.mark.parametrize("options", [dict(), dict(num_beams=3), dict(do_sample=True, top_k=2, temperature=2.0)])
def test_generated_sequences_are_well_formed(model, config, options):
    batch = make_batch(config, MIXED + [dict(layout="h36m17", frames=5, task="pose_estimation_3d")], seed=3)
    torch.manual_seed(0)
    check_well_formed(config, model.generate(**batch, **options), batch)


def test_eager_and_sdpa_agree(config):
    sdpa = build_model(config, attn_implementation="sdpa")
    eager = build_model(config, attn_implementation="eager")
    eager.load_state_dict(sdpa.state_dict())
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    batch = make_batch(config, MIXED, seed=4)
    labels = make_labels(config, batch)
    torch.testing.assert_close(eager(**batch, labels=labels).logits, sdpa(**batch, labels=labels).logits,
                               atol=1e-5, rtol=1e-5)
    assert eager.generate(**batch).tolist() == sdpa.generate(**batch).tolist()


def generate_fast_and_general(model, batch, **options):
    """(the greedy loop's output, its decoder calls, transformers' greedy search's output): a custom (empty) logits
    processor list is outside the loop's options, so the second call runs transformers' search."""
    decoder_calls = []
    handle = model.model.decoder.register_forward_hook(lambda *args: decoder_calls.append(1))
    try:
        fast = model.generate(**batch, **options)
        calls = len(decoder_calls)
        general = model.generate(**batch, logits_processor=LogitsProcessorList(), **options)
    finally:
        handle.remove()
    assert len(decoder_calls) > calls  # the second call ran transformers' search (one call per token)
    return fast, calls, general


def test_fast_path_equals_general_path(model, config):
    samples = [dict(layout="ntu25", frames=12, persons=2, task="action_recognition_3d"),
               dict(layout="openpose18", frames=7, task="action_recognition_2d", two_d=True),
               dict(layout="coco17", frames=9, task="early_action_prediction_3d")]
    batch = make_batch(config, samples, seed=5)
    fast, calls, general = generate_fast_and_general(model, batch)
    assert calls == 1  # one decoder step, the EOT appended without a model call
    fast_dict, _, general_dict = generate_fast_and_general(model, batch, return_dict_in_generate=True)
    assert fast.dtype == general.dtype == torch.long
    assert fast.tolist() == general.tolist()
    assert isinstance(fast_dict, GenerateEncoderDecoderOutput)
    assert isinstance(general_dict, GenerateEncoderDecoderOutput)
    assert fast_dict.sequences.tolist() == general_dict.sequences.tolist() == fast.tolist()
    check_well_formed(config, fast, batch)


def test_greedy_loop_equals_transformers_greedy_search_for_poses_and_labels(model, config):
    """Mixed pose and label rows (different layouts, so different lengths): the model's greedy loop returns
    transformers' greedy tokens, rows padded after their EOT, and makes one decoder call per chosen token."""
    samples = [dict(layout="h36m17", frames=10, task="pose_estimation_3d", two_d=True),
               dict(layout="ntu25", frames=8, task="pose_estimation_3d"),
               dict(layout="coco17", frames=9, task="early_action_prediction_3d")]
    batch = make_batch(config, samples, seed=6)
    fast, calls, general = generate_fast_and_general(model, batch)
    assert fast.tolist() == general.tolist()
    assert calls == 3 * 25  # the longest row's bins (ntu25); its EOT is forced, without a model call
    pad = config.pad_token_id
    assert fast[0, 1 + 3 * 17 + 1:].eq(pad).all() and fast[2, 3:].eq(pad).all()
    check_well_formed(config, fast, batch)


# ------------------------------------------------------------------ parallel decoding
@pytest.mark.parametrize("frames", [1, 3])
def test_parallel_decoding_takes_one_decoder_call_and_equals_transformers_greedy_search(frames):
    """A decoder that does not read its outputs (`parallel_decoding`) is decoded in one call, pose and label rows
    alike, and gives transformers' greedy tokens (which feed every chosen token back, one call per token); its
    logits do not depend on the teacher-forced tokens, in training as in evaluation."""
    config = tiny_config(parallel_decoding=True, pose_estimation_target_frames=frames)
    model = build_model(config).eval()
    samples = [dict(layout="h36m17", frames=10, task="pose_estimation_3d", two_d=True),
               dict(layout="humaneva15", frames=8, task="pose_estimation_3d", two_d=True),
               dict(layout="coco17", frames=9, task="early_action_prediction_3d")]
    batch = make_batch(config, samples, seed=6)
    fast, calls, general = generate_fast_and_general(model, batch)
    assert calls == 1
    assert fast.tolist() == general.tolist()
    assert fast.shape[1] == 1 + frames * 3 * 17 + 1
    check_well_formed(config, fast, batch)
    labels = make_labels(config, batch)
    other = make_labels(config, batch, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch, labels=other).logits, model(**batch, labels=labels).logits)
    model.train()
    torch.manual_seed(0)
    trained = model(**batch, labels=labels).logits
    torch.manual_seed(0)
    torch.testing.assert_close(model(**batch, labels=other).logits, trained)
    model.eval()
    autoregressive = build_model(tiny_config(pose_estimation_target_frames=frames)).eval()
    with torch.no_grad():
        assert not torch.allclose(autoregressive(**batch, labels=other).logits,
                                  autoregressive(**batch, labels=labels).logits)


def test_parallel_decoding_returns_transformers_scores_and_logits_from_its_one_call():
    """generate(output_scores=True, output_logits=True) stays on the one-call path with `parallel_decoding` and
    returns what transformers' greedy search returns, the forced end-of-task step's too; `generate_with_step_logits`
    takes them from that call, and equals decoding then `sequence_scores` (its route for other decoders)."""
    config = tiny_config(parallel_decoding=True)
    model = build_model(config).eval()
    batch = make_batch(config, [dict(layout="h36m17", frames=10, task="pose_estimation_3d", two_d=True),
                                dict(layout="humaneva15", frames=8, task="pose_estimation_3d", two_d=True),
                                dict(layout="coco17", frames=9, task="early_action_prediction_3d")], seed=6)
    options = dict(output_scores=True, output_logits=True, return_dict_in_generate=True)
    fast, calls, general = generate_fast_and_general(model, batch, **options)
    assert calls == 1
    assert torch.equal(fast.sequences, general.sequences)
    assert len(fast.scores) == len(general.scores) == len(fast.logits) == len(general.logits) == 3 * 17 + 1
    for mine, theirs in [*zip(fast.scores, general.scores), *zip(fast.logits, general.logits)]:
        torch.testing.assert_close(mine, theirs)
    encoded = model.get_encoder()(**batch, return_dict=True)
    decoder_calls = []
    handle = model.model.decoder.register_forward_hook(lambda *args: decoder_calls.append(1))
    try:
        sequences, logits = model.generate_with_step_logits(encoded)
    finally:
        handle.remove()
    assert len(decoder_calls) == 1
    assert torch.equal(sequences, general.sequences)
    torch.testing.assert_close(logits, model.sequence_scores(sequences, encoder_outputs=encoded))
    beams, beam_logits = model.generate_with_step_logits(encoded, num_beams=2)  # beams' logits follow the beams
    torch.testing.assert_close(beam_logits, model.sequence_scores(beams, encoder_outputs=encoded))


def test_constraint_of_several_steps_at_once_equals_one_step_at_a_time(config):
    """The one-call decoding masks every step's scores at once; the tables must be the per-step ones."""
    batch = make_batch(config, [dict(layout="h36m17", frames=6, task="pose_estimation_3d", two_d=True),
                                dict(layout="ntu25", frames=6, task="action_recognition_3d")])
    constraint = UPSTaskConstrainedLogitsProcessor(config, batch["task_ids"], batch["layout_ids"])
    steps = constraint.max_new_tokens + 2  # past every row's end too
    scores = torch.randn(2, steps, config.vocab_size)
    at_once = constraint.constrain(torch.arange(steps), scores)
    one_by_one = torch.stack([constraint.constrain(i, scores[:, i]) for i in range(steps)], dim=1)
    assert torch.equal(at_once, one_by_one)
    assert torch.isfinite(at_once).any(-1).all()  # every row may emit something at every step


@pytest.mark.parametrize("overrides", [{}, {"parallel_decoding": True}, {"pose_estimation_target_frames": 3}])
def test_sequence_scores_are_the_logits_each_generated_token_was_chosen_from(overrides):
    """One teacher-forced call recomputes every step's logits: transformers' per-step scores of greedy search
    (autoregressive, parallel and frame-block decoding alike), whose constrained argmax is the generated token."""
    config = tiny_config(**overrides)
    model = build_model(config).eval()
    batch = make_batch(config, [dict(layout="h36m17", frames=10, task="pose_estimation_3d", two_d=True),
                                dict(layout="humaneva15", frames=8, task="pose_estimation_3d", two_d=True)], seed=6)
    general = model.generate(**batch, output_scores=True, return_dict_in_generate=True)
    sequences = model.generate(**batch)
    assert torch.equal(sequences, general.sequences)
    scores = model.sequence_scores(sequences, **batch)
    assert scores.shape == (2, sequences.shape[1] - 1, config.vocab_size) and scores.dtype == torch.float32
    constraint = UPSTaskConstrainedLogitsProcessor(config, batch["task_ids"], batch["layout_ids"])
    steps = torch.arange(scores.shape[1])
    torch.testing.assert_close(constraint.constrain(steps, scores), torch.stack(general.scores, dim=1))
    chosen = constraint.constrain(steps, scores).argmax(-1)
    pose_steps = 3 * 15 * config.pose_estimation_target_frames  # the shorter row's bins, before its EOT
    assert torch.equal(chosen[:, :pose_steps], sequences[:, 1 : 1 + pose_steps])
    encoded = model.get_encoder()(**batch, return_dict=True)
    torch.testing.assert_close(model.sequence_scores(sequences, encoder_outputs=encoded), scores)


# ------------------------------------------------------------------ several pose target frames (frame blocks)
FRAMES = 3


@pytest.fixture(scope="module")
def frames_config():
    return tiny_config(pose_estimation_target_frames=FRAMES)


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def frames_model(frames_config, request):
    return build_model(frames_config, attn_implementation=request.param).eval()


LIFTING = [dict(layout="humaneva15", frames=9, task="pose_estimation_3d", two_d=True),
           dict(layout="humaneva15", frames=6, task="pose_estimation_3d", two_d=True)]


def test_each_target_frame_is_decoded_from_its_own_block(frames_model, frames_config):
    """K target frames are K independent decoder blocks of 3 * J positions over one encoder pass: tokens of one
    frame do not reach the logits of another, and the teacher-forced pass that runs each block as a row of its own
    (`UPSFrameBlocks.fold`) equals the one with the block mask over the whole sequence."""
    batch = make_batch(frames_config, LIFTING, seed=7)
    labels = make_labels(frames_config, batch)
    block = 3 * 15
    assert labels.shape[1] == FRAMES * block + 1
    with torch.no_grad():
        folded = frames_model(**batch, labels=labels)
        masked = frames_model(**batch, labels=labels, output_hidden_states=True)  # hidden states: unfolded path
        other = labels.clone()
        other[:, : block - 1] = labels[:, : block - 1].flip(0)  # frame 0's tokens swapped between the samples
        changed = frames_model(**batch, labels=other)
    torch.testing.assert_close(folded.logits, masked.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(folded.loss, masked.loss)
    torch.testing.assert_close(changed.logits[:, block:], folded.logits[:, block:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(changed.logits[:, 1:block], folded.logits[:, 1:block])
    # The blocks share the position embeddings: only the frame embedding tells them apart.
    same_tokens = labels.clone()
    same_tokens[:, block : 2 * block] = labels[:, :block]
    frame_embeddings = frames_model.model.decoder.embed_target_frames.weight
    saved = frame_embeddings.detach().clone()
    with torch.no_grad():
        frame_embeddings[1] = frame_embeddings[0]
        alike = frames_model(**batch, labels=same_tokens).logits
        frame_embeddings.copy_(saved)
        apart = frames_model(**batch, labels=same_tokens).logits
    torch.testing.assert_close(alike[:, block : 2 * block], alike[:, :block], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(apart[:, block : 2 * block], apart[:, :block], atol=1e-3)


def test_target_frames_are_generated_together_and_equal_transformers_greedy_search(frames_model, frames_config):
    """generate() decodes a clip's K frames side by side, 3 * J decoder calls instead of 3 * J * K, and returns the
    tokens of transformers' greedy search, which decodes them one after the other; teacher forcing those tokens
    reproduces them (training and decoding see the same blocks)."""
    batch = make_batch(frames_config, LIFTING, seed=8)
    fast, calls, general = generate_fast_and_general(frames_model, batch)
    assert fast.tolist() == general.tolist()
    assert fast.shape == (2, 1 + FRAMES * 3 * 15 + 1) and calls == 3 * 15
    check_well_formed(frames_config, fast, batch)
    with torch.no_grad():
        logits = frames_model(**batch, labels=fast[:, 1:]).logits
    constraint = UPSTaskConstrainedLogitsProcessor(frames_config, batch["task_ids"], batch["layout_ids"])
    chosen = torch.stack([constraint.constrain(i, logits[:, i].float()).argmax(-1) for i in range(logits.shape[1])], 1)
    assert chosen.tolist() == fast[:, 1:].tolist()
    # With a label row in the batch the frames are decoded one after the other: the same pose tokens.
    mixed = make_batch(frames_config, LIFTING + [dict(layout="ntu25", frames=9, task="action_recognition_3d")], seed=8)
    assert frames_model.generate(**mixed)[:2].tolist() == fast.tolist()


@pytest.mark.parametrize("options", [dict(num_beams=2), dict(do_sample=True, top_k=3)])
def test_target_frames_with_beams_and_sampling_are_well_formed_with_and_without_cache(frames_model, frames_config,
                                                                                      options):
    mixed = make_batch(frames_config, LIFTING + [dict(layout="h36m17", frames=7, task="pose_estimation_3d"),
                                                 dict(layout="ntu25", frames=9, task="action_recognition_3d")], seed=9)
    outputs = []
    for use_cache in (True, False):
        torch.manual_seed(0)
        outputs.append(frames_model.generate(**mixed, use_cache=use_cache, **options))
        check_well_formed(frames_config, outputs[-1], mixed)
    assert outputs[0].tolist() == outputs[1].tolist()


def test_decoder_position_ids_must_be_consecutive(frames_model, frames_config):
    batch = make_batch(frames_config, LIFTING[:1])
    start = torch.full((1, 2), frames_config.decoder_start_token_id)
    with torch.no_grad():
        shifted = frames_model(**batch, decoder_input_ids=start[:, :1], decoder_position_ids=torch.tensor([[45]]))
        assert shifted.logits.shape == (1, 1, frames_config.vocab_size)
        with pytest.raises(ValueError, match="consecutive"):
            frames_model(**batch, decoder_input_ids=start, decoder_position_ids=torch.tensor([[0, 2]]))
        # Frame blocks read the position table of one frame: a sequence running past the last block's end does not fit.
        too_long = torch.full((1, FRAMES * 45 + frames_config.max_target_positions), frames_config.pad_token_id)
        with pytest.raises(ValueError, match="in a frame block exceeds max_target_positions"):
            frames_model(**batch, decoder_input_ids=too_long)
        # One frame per clip: a given position past the table is refused the same way.
        one_frame = build_model(tiny_config()).eval()
        with pytest.raises(ValueError, match="exceeds max_target_positions"):
            one_frame(**batch, decoder_input_ids=start[:, :1],
                      decoder_position_ids=torch.tensor([[one_frame.config.max_target_positions]]))


def test_generate_max_new_tokens_default_fits_longest_output(model, config):
    batch = make_batch(config, [dict(layout="h36m17", frames=6, task="pose_estimation_3d"),
                                dict(layout="ntu25", frames=6, task="action_recognition_3d")])
    out = model.generate(**batch)
    assert out.shape == (2, 1 + 3 * 17 + 1)


def test_logits_processor_expands_rows_per_beam(config):
    processor = UPSTaskConstrainedLogitsProcessor(
        config, torch.tensor([config.task_id("pose_estimation_3d"), config.task_id("action_recognition_3d")]),
        torch.tensor([config.layout_id("h36m17"), config.layout_id("ntu25")]),
    )
    scores = torch.zeros(4, config.vocab_size)  # 2 samples x 2 beams
    out = processor(torch.ones(4, 2, dtype=torch.long), scores)  # step 1
    allowed = [torch.isfinite(row).nonzero().squeeze(1).tolist() for row in out]
    y_bins = list(range(config.bin_token_offset + config.num_bins, config.bin_token_offset + 2 * config.num_bins))
    assert allowed[0] == allowed[1] == y_bins
    assert allowed[2] == allowed[3] == [config.task_eot_token_id("action_recognition_3d")]
    with pytest.raises(ValueError, match="multiple of the batch"):
        processor(torch.ones(3, 1, dtype=torch.long), torch.zeros(3, config.vocab_size))


# ------------------------------------------------------------------------------------------------ routing


def test_gradients_reach_routing_and_selected_blocks(config):
    model = build_model(config).train()
    batch = make_batch(config, MIXED, seed=6)
    out = model(**batch, labels=make_labels(config, batch), output_router_decisions=True)
    out.loss.backward()
    routing = model.model.encoder.routing
    task_grad = routing.task_embedding.weight.grad
    for task_id in batch["task_ids"].tolist():
        assert task_grad[task_id].abs().sum() > 0
    assert routing.block_embeddings.weight.grad.abs().sum() > 0
    for layer_idx, layer in enumerate(model.model.encoder.layers):
        for h in out.router_decisions[:, layer_idx].unique().tolist():
            block = layer.blocks[h]
            names = ("temporal.fc2.weight", "spatial.0.graph_conv.value.weight", "temporal.self_attn.qkv_proj.weight")
            for name in names:
                grad = block.get_parameter(name).grad
                assert grad is not None and grad.abs().sum() > 0, (layer_idx, h, name)


def assert_loss_of_every_block(model, batch, seed):
    """`model`'s training loss on `batch` equals that of the same weights training every block on every row (the
    usual estimator), with the same Gumbel draws."""
    every_block = build_model(tiny_config(decoder_token_dropout=0.0)).train()
    every_block.load_state_dict(model.state_dict())
    losses = []
    for candidate in (model, every_block):
        torch.manual_seed(seed)
        losses.append(candidate(**batch, labels=make_labels(model.config, batch)).loss)
    torch.testing.assert_close(losses[0], losses[1])


def test_training_the_chosen_blocks_only_runs_each_block_on_its_rows_and_trains_the_router():
    """`routing_train_all_blocks=False`: while training, each row runs the block its Gumbel draw chose, as in
    inference; the router still learns (through the chosen gates), and a block no row chose gets no gradient. Where
    every row chooses the same block the loss is the all-blocks loss (the other block's gate is 0 there)."""
    chosen_only = tiny_config(routing_train_all_blocks=False, decoder_token_dropout=0.0)
    model = build_model(chosen_only).train()
    batch = make_batch(chosen_only, MIXED, seed=6)
    rows = {}

    def count_rows(module, args, output, key):
        rows.setdefault(key, []).append(args[0].shape[0])

    handles = [block.register_forward_hook(lambda mod, args, out, key=(l, h): count_rows(mod, args, out, key))
               for l, layer in enumerate(model.model.encoder.layers) for h, block in enumerate(layer.blocks)]
    torch.manual_seed(0)
    out = model(**batch, labels=make_labels(chosen_only, batch), output_router_decisions=True)
    for handle in handles:
        handle.remove()
    out.loss.backward()
    rows_per_sample = batch["person_mask"].sum(1)
    for l, layer in enumerate(model.model.encoder.layers):
        for h, block in enumerate(layer.blocks):
            chosen = out.router_decisions[:, l] == h
            assert rows.get((l, h), []) == ([int(rows_per_sample[chosen].sum())] if chosen.any() else [])
            grad = block.temporal.fc2.weight.grad
            assert (grad is not None and grad.abs().sum() > 0) == bool(chosen.any()), (l, h)
    routing = model.model.encoder.routing
    assert all(routing.task_embedding.weight.grad[t].abs().sum() > 0 for t in batch["task_ids"].tolist())

    with torch.no_grad():  # every row prefers block 1 in every layer, whatever the Gumbel noise
        routing.block_embeddings.weight.zero_()
        routing.block_embeddings.weight[:, 1, 0] = 1e4
        routing.task_embedding.weight.fill_(1.0)
    assert_loss_of_every_block(model, batch, seed=1)


def test_a_settled_routing_block_is_not_run_while_training():
    """`routing_skip_probability`: with every block trained, a block that no sample draws with at least that
    probability, and that no row drew, is not run; every other block runs on every row, so the loss is the
    all-blocks loss. Layer 0 is settled (its block 0 is never drawn): only its block 1 runs. In layer 1 block 0 is
    unlikely (0.3, under the 0.4 threshold) but drawn by some rows: it runs on every row, as block 1 does, so its
    task batch norms see the whole batch."""
    skipping = tiny_config(routing_skip_probability=0.4, decoder_token_dropout=0.0)
    model = build_model(skipping).train()
    routing = model.model.encoder.routing
    with torch.no_grad():  # the same scores for every task
        routing.block_embeddings.weight.zero_()
        routing.block_embeddings.weight[0, 1, 0] = 1e4
        routing.block_embeddings.weight[1, 1, 0] = math.log(0.7 / 0.3)
        routing.task_embedding.weight.fill_(1.0)
    batch = make_batch(skipping, MIXED, seed=8)
    rows = {}
    handles = [block.register_forward_hook(lambda mod, args, out, key=(l, h): rows.setdefault(key, []).append(
        args[0].shape[0])) for l, layer in enumerate(model.model.encoder.layers) for h, block in enumerate(layer.blocks)]
    torch.manual_seed(3)
    out = model(**batch, labels=make_labels(skipping, batch), output_router_decisions=True)
    for handle in handles:
        handle.remove()
    every_row = [int(batch["person_mask"].sum())]
    drew_block_0 = out.router_decisions[:, 1] == 0
    assert (out.router_decisions[:, 0] == 1).all() and drew_block_0.any() and not drew_block_0.all()
    assert (0, 0) not in rows and rows[(0, 1)] == every_row
    assert rows[(1, 0)] == every_row and rows[(1, 1)] == every_row
    assert_loss_of_every_block(model, batch, seed=3)
    with pytest.raises(ValueError, match="routing_skip_probability must be in"):
        tiny_config(routing_skip_probability=1.0)


def test_which_routing_blocks_a_training_step_runs():
    """A block is left out only when no sample is likely to draw it and no sample drew it: in a batch of several
    tasks, one task settled against block 0 does not skip it while another task still draws it half the time. The
    chance of a draw is the softmax of the scores whatever the Gumbel temperature (the hard draw is the argmax of
    scores plus noise). Without a threshold (0, the default) or without training every block, the answer is known
    without reading the scores."""
    router = build_model(tiny_config(routing_skip_probability=0.1)).model.encoder.routing
    settled, undecided = torch.tensor([[-20.0, 20.0], [-20.0, 20.0]]), torch.zeros(2, 2)  # (L, H) scores
    drew_block_1 = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # (L, H) one sample's drawn gates
    drew_block_0_in_layer_1 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert router.blocks_on_every_row(settled[None], drew_block_1[None]) == [[False, True], [False, True]]
    assert router.blocks_on_every_row(settled[None], drew_block_0_in_layer_1[None]) == [[False, True], [True, True]]
    assert router.blocks_on_every_row(torch.stack([settled, undecided]), torch.stack([drew_block_1] * 2)) == [
        [True, True], [True, True]]
    drawn_15_percent = torch.tensor([[math.log(0.15 / 0.85), 0.0]] * 2)  # p(block 0) = 0.15 >= 0.1
    router.gumbel_temperature = 0.1  # the end of the recipes' annealing
    assert router.blocks_on_every_row(drawn_15_percent[None], drew_block_1[None]) == [[True, True]] * 2
    for overrides, expected in (({}, True), ({"routing_train_all_blocks": False}, False)):
        router = build_model(tiny_config(**overrides)).model.encoder.routing
        assert router.blocks_on_every_row(settled[None], drew_block_1[None]) == [[expected, expected]] * 2


def test_sharpened_routing_draws_follow_the_annealed_temperature():
    """A hard Gumbel-softmax draw is argmax(scores + noise): it draws each block with the softmax of the scores
    whatever the temperature. With `routing_sharpen_draws` the draws follow the softmax at the current temperature,
    so a 60:40 layer is drawn 98:2 at the end of the recipes' annealing (0.1); `draw_probabilities` (what
    `routing_skip_probability` is compared with) says so in both modes."""
    for sharpen, expected_share_of_block_1 in ((False, 0.4), (True, 0.4 ** 10 / (0.6 ** 10 + 0.4 ** 10))):
        router = build_model(tiny_config(routing_sharpen_draws=sharpen)).model.encoder.routing.train()
        with torch.no_grad():  # every task scores the blocks log 0.6 and log 0.4 in every layer
            router.block_embeddings.weight.zero_()
            router.block_embeddings.weight[:, :, 0] = torch.tensor([math.log(0.6), math.log(0.4)])
            router.task_embedding.weight.zero_()
            router.task_embedding.weight[:, 0] = 1.0
        router.gumbel_temperature = 0.1
        torch.manual_seed(0)
        scores, decisions, gates = router(torch.zeros(4000, dtype=torch.long))
        assert torch.equal(gates.argmax(-1), decisions) and bool((gates.sum(-1) == 1).all())
        drawn_share = decisions.float().mean(0)  # (L,) share of samples that drew block 1
        torch.testing.assert_close(drawn_share, torch.full_like(drawn_share, expected_share_of_block_1), atol=0.03,
                                   rtol=0)
        torch.testing.assert_close(router.draw_probabilities(scores)[:, :, 1],
                                   torch.full_like(scores[:, :, 1], expected_share_of_block_1))


def test_inference_runs_only_selected_blocks(model, config):
    batch = make_batch(config, MIXED, seed=7)
    calls = {}
    handles = []
    for l, layer in enumerate(model.model.encoder.layers):
        for h, block in enumerate(layer.blocks):
            handles.append(block.register_forward_hook(
                lambda mod, args, out, key=(l, h): calls.setdefault(key, []).append(args[0].shape[0])))
    try:
        decisions = model.get_encoder()(**batch).router_decisions
    finally:
        for handle in handles:
            handle.remove()
    rows_per_sample = batch["person_mask"].sum(1)
    for l in range(config.encoder_layers):
        for h in range(config.encoder_blocks_per_layer):
            chosen = decisions[:, l] == h
            if chosen.any():
                assert calls[(l, h)] == [int(rows_per_sample[chosen].sum())]
            else:
                assert (l, h) not in calls


def test_inference_with_mixed_routes_runs_each_block_on_its_rows(config):
    model = build_model(config)
    routing = model.model.encoder.routing
    with torch.no_grad():  # task 0 prefers block 0 and task 1 block 1 in every layer
        routing.block_embeddings.weight.zero_()
        routing.block_embeddings.weight[:, 0, 0] = 1.0
        routing.block_embeddings.weight[:, 1, 1] = 1.0
        routing.task_embedding.weight.zero_()
        routing.task_embedding.weight[0, 0] = 1.0
        routing.task_embedding.weight[1, 1] = 1.0
    samples = [dict(layout="ntu25", frames=8, task=TASKS[0]), dict(layout="ntu25", frames=8, task=TASKS[1]),
               dict(layout="ntu25", frames=8, task=TASKS[0])]
    batch = make_batch(config, samples, seed=8)
    out = model.get_encoder()(**batch)
    assert out.router_decisions.tolist() == [[0] * config.encoder_layers, [1] * config.encoder_layers,
                                             [0] * config.encoder_layers]
    for i in range(3):
        single = model.get_encoder()(**unbatch(batch, i, config))
        # Float32 rounding of different batch shapes, amplified by the randomised normalisation statistics, reaches
        # ~1e-4 here; a row computed by the wrong block differs by O(1).
        torch.testing.assert_close(out.last_hidden_state[i], single.last_hidden_state[0], atol=2e-4, rtol=1e-4)


def test_routing_agreement_is_the_chance_that_two_tasks_draw_one_block(config):
    """`UPSTaskRouter.agreement`: for each pair of distinct tasks and each layer, sum_h p_a(h) p_b(h) under the
    probabilities training draws blocks with (the softmax of the routing scores; at the current temperature with
    `routing_sharpen_draws`), averaged; it is differentiable in both embeddings."""
    tasks = torch.tensor([0, 1, 3])

    def by_hand(probs):  # (3, L, H)
        return sum((probs[a] * probs[b]).sum(-1).mean() for a, b in ((0, 1), (0, 2), (1, 2))) / 3

    sharpened = build_model(tiny_config(routing_sharpen_draws=True)).model.encoder.routing
    sharpened.gumbel_temperature = 0.5
    torch.testing.assert_close(sharpened.agreement(tasks), by_hand((sharpened.scores(tasks) / 0.5).softmax(-1)))
    routing = build_model(config).train().model.encoder.routing
    agreement = routing.agreement(tasks)
    torch.testing.assert_close(agreement, by_hand(routing.scores(tasks).softmax(-1).detach()))
    agreement.backward()
    assert routing.task_embedding.weight.grad[tasks].abs().sum(1).gt(0).all()
    assert routing.block_embeddings.weight.grad.abs().sum() > 0
    with torch.no_grad():
        routing.block_embeddings.weight.zero_()
        routing.block_embeddings.weight[:, 0, 0] = 50.0
        routing.block_embeddings.weight[:, 1, 1] = 50.0
        routing.task_embedding.weight.zero_()
        routing.task_embedding.weight[0, 0] = 1.0  # task 0: block 0 in every layer
        routing.task_embedding.weight[1, 1] = 1.0  # task 1: block 1
        routing.task_embedding.weight[2, 0] = 1.0  # task 2: block 0, as task 0
    assert routing.agreement(torch.tensor([0, 1])).item() < 1e-6
    assert routing.agreement(torch.tensor([0, 2])).item() > 1 - 1e-6
    for bad in ([0], [1, 1], [[0, 1]]):
        with pytest.raises(ValueError, match="at least two distinct task ids"):
            routing.agreement(torch.tensor(bad))


def test_set_gumbel_temperature(model):
    model.set_gumbel_temperature(0.25)
    assert model.model.encoder.routing.gumbel_temperature == 0.25
    with pytest.raises(ValueError, match="positive"):
        model.set_gumbel_temperature(0.0)
    model.set_gumbel_temperature(1.0)


# ------------------------------------------------------------------------------------------------ loss and training


def test_loss_averages_per_sample(config):
    model = build_model(config)
    batch = make_batch(config, MIXED, seed=9)
    labels = make_labels(config, batch)
    out = model(**batch, labels=labels)
    nll = torch.nn.functional.cross_entropy(out.logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    valid = labels != -100
    torch.testing.assert_close(out.loss, ((nll * valid).sum(1) / valid.sum(1)).mean())
    assert not torch.allclose(out.loss, nll[valid].mean())  # a pose target's many tokens do not outweigh a label
    assert set(out.task_losses) == set(TASKS)
    pose = config.task_id("pose_estimation_3d")
    i = batch["task_ids"].tolist().index(pose)
    torch.testing.assert_close(out.task_losses["pose_estimation_3d"], nll[i][valid[i]].mean())


def test_label_smoothing_spreads_a_share_of_label_targets_over_the_label_tokens_only():
    config = tiny_config(label_smoothing=0.2)
    model = build_model(config).eval()
    batch = make_batch(config, MIXED, seed=9)
    labels = make_labels(config, batch)
    out = model(**batch, labels=labels)
    log_probs = out.logits.float().log_softmax(-1)
    valid = labels != -100
    nll = -log_probs.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    label_ids = config.label_token_ids
    is_label = valid & (labels >= label_ids.start) & (labels < label_ids.stop)
    assert is_label.sum() == 3 and (is_label.sum(1) <= 1).all()  # one label token per recognition target
    uniform = -log_probs[..., label_ids.start:label_ids.stop].mean(-1)
    expected = torch.where(is_label, 0.8 * nll + 0.2 * uniform, nll) * valid  # pose and end tokens stay one-hot
    torch.testing.assert_close(out.loss, (expected.sum(1) / valid.sum(1)).mean())
    plain = build_model(tiny_config()).eval()
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain(**batch, labels=labels).loss, out.loss)
    with pytest.raises(ValueError, match="label_smoothing"):
        tiny_config(label_smoothing=1.0)


@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_coordinate_regression_adds_the_expected_bins_distance_to_coordinate_tokens_only(sigma):
    weight = 0.5
    config = tiny_config(coordinate_regression_weight=weight, bin_smoothing_sigma=sigma)
    model = build_model(config).eval()
    plain = build_model(tiny_config(bin_smoothing_sigma=sigma)).eval()
    plain.load_state_dict(model.state_dict())
    batch = make_batch(config, MIXED, seed=9)
    labels = make_labels(config, batch)
    out, without = model(**batch, labels=labels), plain(**batch, labels=labels)
    valid = labels != -100
    offset = labels - config.bin_token_offset
    is_bin = valid & (offset >= 0) & (offset < 3 * config.num_bins)
    assert is_bin.any() and (valid & ~is_bin).any()  # pose rows and recognition rows both present
    distance = torch.zeros_like(labels, dtype=torch.float32)
    for row, step in is_bin.nonzero().tolist():
        axis_start = config.bin_token_offset + (offset[row, step] // config.num_bins) * config.num_bins
        probs = out.logits[row, step, axis_start:axis_start + config.num_bins].float().softmax(-1)
        expected_bin = (probs * torch.arange(config.num_bins)).sum()
        distance[row, step] = (expected_bin - offset[row, step] % config.num_bins).abs()
    torch.testing.assert_close(out.logits, without.logits)
    torch.testing.assert_close(out.loss - without.loss, (weight * distance.sum(1) / valid.sum(1)).mean())
    for bad in (-0.1, float("nan"), None, True):  # a bool is refused, not read as 1
        with pytest.raises(ValueError, match="coordinate_regression_weight"):
            tiny_config(coordinate_regression_weight=bad)
        with pytest.raises(ValueError, match="bin_smoothing_sigma"):
            tiny_config(bin_smoothing_sigma=bad)


def test_optimizer_steps_lower_loss_on_every_task(config):
    model = build_model(config)
    batch = make_batch(config, MIXED, seed=10)
    labels = make_labels(config, batch)
    before = model(**batch, labels=labels).task_losses
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(15):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    after = model(**batch, labels=labels).task_losses
    for task in TASKS:
        assert after[task] < before[task], (task, before[task], after[task])


def test_task_batch_norm_moves_each_tasks_statistics_towards_its_own_rows_only():
    """Training on a batch of mixed tasks: the output is normalised with the whole batch's statistics, and each task
    present updates its running statistics exactly as torch's BatchNorm2d would from that task's rows alone
    (unbiased variance, momentum 0.1); a task absent from the batch keeps its statistics."""
    from modeling_ups.graph_ups import UPSTaskBatchNorm

    torch.manual_seed(0)
    norm = UPSTaskBatchNorm(num_tasks=4, channels=6).train()
    norm.running_mean[1] = 0.5  # not the initial value, so "kept" is told from "reset"
    hidden = torch.randn(10, 6, 7, 5) * 3 + 2
    task_ids = torch.tensor([0, 2, 2, 0, 0, 2, 3, 3, 0, 3])  # task 1 absent
    context = type("Context", (), {"task_ids": task_ids})()
    out = norm(hidden, context)
    whole = torch.nn.BatchNorm2d(6).train()
    torch.testing.assert_close(out, whole(hidden))
    for task in (0, 2, 3):
        reference = torch.nn.BatchNorm2d(6).train()
        reference(hidden[task_ids == task])
        torch.testing.assert_close(norm.running_mean[task], reference.running_mean)
        torch.testing.assert_close(norm.running_var[task], reference.running_var)
    assert torch.equal(norm.running_mean[1], torch.full((6,), 0.5)) and torch.equal(norm.running_var[1], torch.ones(6))


def test_training_under_bfloat16_autocast_keeps_float32_batch_norm_statistics(config):
    """`examples/train.py --mixed_precision bf16` (Accelerate's CPU autocast): the loss and the task batch norms'
    running statistics are those of float32 training within bfloat16's precision, the statistics stay float32."""
    from modeling_ups.graph_ups import UPSTaskBatchNorm

    batch = make_batch(config, MIXED, seed=10)
    labels = make_labels(config, batch)
    reference, model = build_model(config).train(), build_model(config).train()
    torch.manual_seed(0)  # the same Gumbel noise in both passes
    reference_loss = reference(**batch, labels=labels).loss
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch, labels=labels)
    assert out.logits.dtype == torch.bfloat16  # autocast did run the model in bfloat16
    out.loss.backward()
    torch.testing.assert_close(out.loss, reference_loss, atol=0.05, rtol=0.02)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    norms = [(m, r) for m, r in zip(model.modules(), reference.modules()) if isinstance(m, UPSTaskBatchNorm)]
    assert norms
    for norm, reference_norm in norms:
        assert norm.running_mean.dtype == norm.running_var.dtype == torch.float32
        torch.testing.assert_close(norm.running_mean, reference_norm.running_mean, atol=0.02, rtol=0.02)
        torch.testing.assert_close(norm.running_var, reference_norm.running_var, atol=0.02, rtol=0.02)


# ------------------------------------------------------------------------------------------------ vocabulary init


def test_init_vocabulary_embeddings_same_width(config):
    model = build_model(config)
    features = torch.randn(config.vocab_size, config.d_model)
    init_vocabulary_embeddings(model, features)
    torch.testing.assert_close(model.get_input_embeddings().weight, features)
    assert model.lm_head.weight is model.get_input_embeddings().weight


def test_init_vocabulary_embeddings_pca_projection(config):
    model = build_model(config)
    # Rank-5 features in 384 dims: the PCA projection to d_model keeps all pairwise distances (up to one scale).
    features = torch.randn(config.vocab_size, 5) @ torch.randn(5, 384) + 3.0
    init_vocabulary_embeddings(model, features)
    table = model.get_input_embeddings().weight
    assert table.shape == (config.vocab_size, config.d_model)
    assert abs(table.std().item() - config.init_std) < 1e-4
    ratio = torch.cdist(table, table)[~torch.eye(config.vocab_size, dtype=bool)] / \
        torch.cdist(features, features)[~torch.eye(config.vocab_size, dtype=bool)]
    torch.testing.assert_close(ratio, torch.full_like(ratio, ratio.mean().item()), rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="vocab_size"):
        init_vocabulary_embeddings(model, torch.randn(config.vocab_size + 1, 384))


# ------------------------------------------------------------------------------------------------ bad inputs


def _bad(config, **changes):
    batch = make_batch(config, [dict(layout="ntu25", frames=8, persons=2), dict(layout="ntu25", frames=5)])
    batch.update(changes)
    return batch


@pytest.mark.parametrize("change, message", [
    (lambda b, c: dict(pose_values=b["pose_values"][0, 0]), r"got shape \(8, 25, 3\)"),
    (lambda b, c: dict(pose_values=b["pose_values"][..., :2]), "input_channels=3"),
    (lambda b, c: dict(pose_values=b["pose_values"][..., :17, :]), "largest joint count"),
    (lambda b, c: dict(pose_values=torch.zeros(2, 2, c.max_frames + 1, 25, 3),
                       attention_mask=torch.ones(2, c.max_frames + 1)), "max_frames"),
    (lambda b, c: dict(pose_values=torch.zeros(2, c.max_persons + 1, 8, 25, 3), person_mask=None), "max_persons"),
    (lambda b, c: dict(task_ids=torch.tensor([0, len(c.tasks)])), "task_ids must hold 2 ids"),
    (lambda b, c: dict(task_ids=None), "task_ids is required"),
    (lambda b, c: dict(layout_ids=torch.tensor([0, len(c.layouts)])), "layout_ids must hold 2 ids"),
    (lambda b, c: dict(attention_mask=b["attention_mask"][:, :5]), "attention_mask"),
    (lambda b, c: dict(person_mask=torch.ones(2, 3)), "person_mask"),
    (lambda b, c: dict(layout_ids=None), "layout_ids is required"),
])
def test_bad_inputs_raise(model, config, change, message):
    batch = _bad(config)
    batch.update(change(batch, config))
    with pytest.raises(ValueError, match=message):
        model(**batch, decoder_input_ids=torch.ones(2, 1, dtype=torch.long))


def test_generate_without_task_ids_raises(model, config):
    batch = _bad(config, task_ids=None)
    with pytest.raises(ValueError, match="task_ids is required"):
        model.generate(**batch)


# ------------------------------------------------------------------------------------------------ save / load


def test_save_and_load_reproduce_outputs(model, config, tmp_path):
    import modeling_ups  # noqa: F401  (registers the Auto classes)

    model.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    assert {"modeling_ups.py", "configuration_ups.py", "skeletons.py"} <= set(files)
    batch = make_batch(config, MIXED, seed=11)
    labels = make_labels(config, batch)
    expected = model(**batch, labels=labels).logits
    for loaded in (UPSForPoseSequenceModeling.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert type(loaded) is UPSForPoseSequenceModeling
        loaded.eval()
        # The graph buffers are not saved: they must be rebuilt, not left uninitialised.
        torch.testing.assert_close(loaded.model.encoder.graph.adjacency, model.model.encoder.graph.adjacency)
        assert torch.equal(loaded(**batch, labels=labels).logits, expected)
        assert loaded.lm_head.weight.data_ptr() == loaded.get_input_embeddings().weight.data_ptr()
        assert loaded.generate(**batch).tolist() == model.generate(**batch).tolist()


REMOTE_SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys
    import torch

    class _NoLocalPackage(importlib.abc.MetaPathFinder):
        # The repo is not on sys.path here; this also hides an installed copy of the package.
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_ups" or name.startswith("modeling_ups."):
                raise ImportError("modeling_ups is hidden in this process")
            return None

    sys.meta_path.insert(0, _NoLocalPackage())
    try:
        import modeling_ups  # noqa: F401
        importable = True
    except ImportError:
        importable = False
    from transformers import AutoModel

    folder, batch_file, out_file = sys.argv[1:4]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    batch = torch.load(batch_file)
    result = {"importable": importable, "class_module": type(model).__module__,
              "tokens": model.generate(**batch).tolist()}
    with open(out_file, "w") as f:
        json.dump(result, f)
""")


def test_remote_code_loads_in_fresh_process(model, config, tmp_path):
    folder = tmp_path / "ups_checkpoint"
    model.save_pretrained(folder)
    batch = make_batch(config, MIXED, seed=12)
    torch.save(batch, tmp_path / "batch.pt")
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_SCRIPT)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    subprocess.run([sys.executable, str(script), str(folder), str(tmp_path / "batch.pt"), str(tmp_path / "out.json")],
                   cwd=work, env=env, check=True, timeout=300)
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["importable"] is False
    assert result["class_module"].startswith("transformers_modules.")
    assert result["tokens"] == model.generate(**batch).tolist()


def test_padding_is_exact_through_the_graph_network(config):
    """Per-task BatchNorm in eval mode: a padded sample equals the unpadded one."""
    model = build_model(config)
    samples = [dict(layout="ntu25", frames=20), dict(layout="coco17", frames=9, persons=2)]
    batch = make_batch(config, samples)
    batched = model.model.encoder(**batch)
    for i in range(len(samples)):
        alone = model.model.encoder(**unbatch(batch, i, config))
        # Float32 rounding of different batch shapes depends on the kernels' thread count: up to 3e-5 on one thread
        # (OMP_NUM_THREADS=1), 1e-5 on two; a padded frame or joint leaking into a real one differs by O(1).
        torch.testing.assert_close(
            batched.last_hidden_state[i][batched.attention_mask[i].bool()],
            alone.last_hidden_state[0][alone.attention_mask[0].bool()], atol=1e-4, rtol=1e-4,
        )


@pytest.mark.parametrize("option, value", [("norm_type", "layer"), ("loss_reduction", "token")])
def test_retired_options_are_refused_and_their_only_value_accepted(option, value):
    """Configs saved by ups <= 0.2 still load (they name the one value every preset used); other values raise."""
    with pytest.raises(ValueError, match=option):
        tiny_config(**{option: value})
    kept = {"norm_type": "task_batch", "loss_reduction": "sample"}[option]
    assert option not in tiny_config(**{option: kept}).to_dict()


# ------------------------------------------------------------------------------------------------ input features


def test_root_relative_copy_subtracts_each_frames_root_and_keeps_missing_joints_zero():
    config = tiny_config()
    graph = build_model(config).model.encoder.graph
    layout_ids = torch.tensor([config.layout_id("coco17"), config.layout_id("h36m17")])
    generator = torch.Generator().manual_seed(0)
    coords = torch.randn(2, 3, 5, config.max_joints, generator=generator)  # (N, C, T, V)
    coords[0, :, 2, 4] = 0.0  # a joint the detector missed in frame 2
    coords[1, :, 0] -= coords[1, :, 0, :1].clone()  # h36m17 frame 0 centred on its pelvis, as the processor does
    relative = graph.root_relative(coords, layout_ids)
    for row, layout_id in enumerate(layout_ids.tolist()):
        root_joints = config.layouts[layout_id]["root"]  # coco17: the mean of both hips
        root = coords[row][..., root_joints].mean(-1, keepdim=True)  # (C, T, 1), one root per frame
        expected = (coords[row] - root) * coords[row].ne(0).any(0, keepdim=True)
        torch.testing.assert_close(relative[row], expected)
    assert len(config.layouts[layout_ids[0]]["root"]) == 2
    assert (relative[0, :, 2, 4] == 0).all()
    # The pelvis at the origin is a real joint there: frame 0 of h36m17 is already root-relative.
    torch.testing.assert_close(relative[1, :, 0, 1:17], coords[1, :, 0, 1:17])
    # Moving the body within a frame leaves its relative copy unchanged.
    moved = coords.clone()
    moved[1, :, 1:] += torch.tensor([3.0, -2.0, 0.5])[:, None, None]
    torch.testing.assert_close(graph.root_relative(moved, layout_ids)[1, :, 1:], relative[1, :, 1:])


def test_bones_run_from_each_joints_parent_in_the_layout_tree():
    config = tiny_config()
    graph = build_model(config).model.encoder.graph
    layout_id = config.layout_id("h36m17")
    layout = config.layouts[layout_id]
    coords = torch.randn(1, 3, 4, config.max_joints, generator=torch.Generator().manual_seed(0))
    coords[..., 17:] = 0.0  # padded joints
    coords[0, :, 0, 0] = 0.0  # the pelvis at the origin in frame 0, as the processor centres it
    coords[0, :, 2, 5] = 0.0  # left knee missed in frame 2
    bones = graph.bones(coords, torch.tensor([layout_id]))
    parents = graph.parents[layout_id]
    # Every edge of the layout joins a joint to its parent, and every joint but the root has one.
    edges = {frozenset(e) for e in layout["edges"]}
    assert all(frozenset((j, int(parents[j]))) in edges for j in range(1, 17)) and parents[0] == 0
    for joint in (1, 2, 3, 16):  # right hip (the pelvis is at zero in frame 0), right knee and ankle, right wrist
        torch.testing.assert_close(bones[0, :, :, joint], coords[0, :, :, joint] - coords[0, :, :, int(parents[joint])])
    assert (bones[0, :, :, 0] == 0).all() and (bones[0, :, :, 17:] == 0).all()
    assert (bones[0, :, 2, 5] == 0).all() and (bones[0, :, 2, 6] == 0).all()  # the missed left knee and its ankle
    torch.testing.assert_close(bones[0, :, 3, 6], coords[0, :, 3, 6] - coords[0, :, 3, 5])


def test_motion_is_the_displacement_to_the_next_frame_and_stops_at_missing_frames_and_joints():
    config = tiny_config()
    graph = build_model(config).model.encoder.graph
    layout_id = config.layout_id("ntu25")
    coords = torch.randn(1, 3, 6, config.max_joints, generator=torch.Generator().manual_seed(1))
    coords[..., 4:, :] = 0.0  # frames 4 and 5 are padding
    coords[0, :, 1, 7] = 0.0  # joint 7 missed in frame 1
    motion = graph.motion(coords, torch.tensor([layout_id]))
    torch.testing.assert_close(motion[0, :, :3, 3], coords[0, :, 1:4, 3] - coords[0, :, :3, 3])
    assert (motion[0, :, 3:] == 0).all()  # the last real frame and the padding
    assert (motion[0, :, 0:2, 7] == 0).all()  # into and out of the missed frame


def test_bone_motion_is_each_bones_change_and_stops_where_either_end_is_missing():
    config = tiny_config()
    graph = build_model(config).model.encoder.graph
    layout_id = config.layout_id("h36m17")
    coords = torch.randn(1, 3, 5, config.max_joints, generator=torch.Generator().manual_seed(2))
    coords[..., 17:] = 0.0  # padded joints
    coords[..., 4, :] = 0.0  # frame 4 is padding
    coords[0, :, 1, 5] = 0.0  # left knee missed in frame 1: the thigh (4 -> 5) and the shin (5 -> 6) are undefined
    layout_ids = torch.tensor([layout_id])
    bones = graph.bones(coords, layout_ids)
    bone_motion = graph.bone_motion(coords, layout_ids)
    torch.testing.assert_close(bone_motion[0, :, :3, 3], bones[0, :, 1:4, 3] - bones[0, :, :3, 3])
    assert (bone_motion[0, :, 3:] == 0).all()  # the last real frame and the padding
    for joint in (5, 6):
        assert (bone_motion[0, :, 0:2, joint] == 0).all()  # into and out of the frame with the missed knee
        torch.testing.assert_close(bone_motion[0, :, 2, joint], bones[0, :, 3, joint] - bones[0, :, 2, joint])
    # A bone's change ignores where the body goes: moving the clip as a whole changes nothing.
    moved = coords + torch.tensor([0.3, -0.7, 1.1])[None, :, None, None] * coords.ne(0).any(1, keepdim=True)
    torch.testing.assert_close(graph.bone_motion(moved, layout_ids), bone_motion)


BONE_ALONE = {"joint_input": False, "root_relative_input": False, "bone_input": True}
BONE_MOTION_ALONE = {"joint_input": False, "root_relative_input": False, "bone_motion_input": True}


@pytest.mark.parametrize("streams", [{}, {"root_relative_input": False}, {"bone_input": True},
                                     {"motion_input": True}, {"bone_input": True, "motion_input": True}, BONE_ALONE,
                                     {"joint_input": False, "root_relative_input": False, "motion_input": True},
                                     BONE_MOTION_ALONE, {"motion_input": True, "bone_motion_input": True}])
def test_input_streams_set_the_tokenizers_input_channels(streams):
    config = tiny_config(**streams)
    model = build_model(config)
    first = model.model.encoder.joint_tokenizer.layers[0].graph.graph_conv.value
    expected = (streams.get("joint_input", True) + streams.get("root_relative_input", True)
                + streams.get("bone_input", False) + streams.get("motion_input", False)
                + streams.get("bone_motion_input", False))
    assert first.in_channels == 3 * expected == config.tokenizer_input_channels
    # Only a model with a displacement stream normalises it (its channels), so other checkpoints keep their parameters.
    norm = model.model.encoder.joint_tokenizer.motion_norm
    displacement_streams = streams.get("motion_input", False) + streams.get("bone_motion_input", False)
    assert (norm.weight.shape[0] if norm is not None else 0) == 3 * displacement_streams
    batch = make_batch(config, MIXED)
    outputs = model.model.encoder(**batch)
    assert outputs.last_hidden_state.shape[-1] == config.d_model and torch.isfinite(outputs.last_hidden_state).all()


def test_a_bone_stream_model_sees_only_the_bones():
    config = tiny_config(**BONE_ALONE)
    graph = build_model(config).model.encoder.graph
    coords = torch.randn(2, 3, 6, config.max_joints)
    layout_ids = torch.tensor([0, 0])
    torch.testing.assert_close(graph.input_streams(coords, layout_ids, config), graph.bones(coords, layout_ids))
    # Bones do not move with the body: a shifted clip gives the bone model the same input.
    shifted = coords + torch.tensor([0.5, -1.0, 2.0])[None, :, None, None]
    torch.testing.assert_close(graph.input_streams(shifted, layout_ids, config), graph.bones(coords, layout_ids))


def test_streams_are_stacked_in_the_configs_order():
    config = tiny_config(bone_input=True, motion_input=True, bone_motion_input=True)
    assert config.input_streams == ["joint", "root_relative", "bone", "motion", "bone_motion"]
    graph = build_model(config).model.encoder.graph
    coords = torch.randn(2, 3, 6, config.max_joints)
    layout_ids = torch.tensor([0, 0])
    expected = [coords, graph.root_relative(coords, layout_ids), graph.bones(coords, layout_ids),
                graph.motion(coords, layout_ids), graph.bone_motion(coords, layout_ids)]
    torch.testing.assert_close(graph.input_streams(coords, layout_ids, config), torch.cat(expected, 1))


def test_a_model_without_any_input_stream_is_refused():
    with pytest.raises(ValueError, match="at least one input stream"):
        tiny_config(joint_input=False, root_relative_input=False)


# ------------------------------------------------------------------------------------------------ decoder inputs


def test_decoder_token_dropout_hides_teacher_tokens_in_training_only():
    config = tiny_config(decoder_token_dropout=1.0)
    model = build_model(config)
    batch = make_batch(config, [dict(layout="h36m17", frames=9, task="pose_estimation_3d", two_d=True)] * 2)
    labels = make_labels(config, batch)
    other = labels.clone()
    other[:, 1:-1] = make_labels(config, batch, seed=1)[:, 1:-1]  # different teacher tokens, same first token
    decoder_inputs = [torch.cat([torch.ones(2, 1, dtype=torch.long), y[:, :-1]], 1) for y in (labels, other)]

    def logits(decoder_input_ids):
        torch.manual_seed(0)  # the same Gumbel routing draw for both inputs in training mode
        return model(**batch, decoder_input_ids=decoder_input_ids, use_cache=False).logits

    model.train()
    try:
        torch.testing.assert_close(logits(decoder_inputs[0]), logits(decoder_inputs[1]))  # every token hidden
    finally:
        model.eval()
    assert not torch.allclose(logits(decoder_inputs[0]), logits(decoder_inputs[1]))  # inference sees them


@pytest.mark.parametrize("field, value", [
    ("decoder_token_dropout", -0.1), ("decoder_token_dropout", 1.5),
])
def test_invalid_decoder_token_dropout_is_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})
