"""transformers' own common model tests, run on UPS as they run on an in-tree model.

Ported from huggingface/transformers `tests/test_modeling_common.py` (`ModelTesterMixin`) and
`tests/generation/test_utils.py` (`GenerationTesterMixin`), v5: each test keeps its name and what it checks, on a
tiny UPS config and a mixed batch (every task, several skeleton layouts, 1-2 persons, padded frames). Where UPS
differs by design (the encoder input is a skeleton sequence, not token ids; encoder states are per-person frame
tokens; outputs have a fixed, task-constrained form) the check is adapted and the comment says how. A common test that
does not apply is listed in NOT_APPLICABLE with its reason (reported as a skip by test_not_applicable_to_ups), so the
list of transformers' tests stays visible here.

Tests run on `TRANSFORMERS_TEST_DEVICE` (default: CUDA when available, else CPU), as transformers' tests do.
"""

import collections
import copy
import inspect
import math
import os
import re
import warnings
from contextlib import contextmanager
from unittest import mock

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file as safe_load_file
from safetensors.torch import save_file as safe_save_file
from torch import nn
from transformers import GenerationConfig, GenerationMixin, PreTrainedModel, set_seed
from transformers.cache_utils import Cache, EncoderDecoderCache, StaticCache
from transformers.generation import GenerateBeamEncoderDecoderOutput, GenerateEncoderDecoderOutput
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import _get_tied_weight_keys, load_state_dict
from transformers.pytorch_utils import id_tensor_storage

import modeling_ups  # noqa: F401  (registers UPS with the Auto classes)
from modeling_ups import UPSConfig, UPSForPoseSequenceModeling, UPSModel, UPSTaskConstrainedLogitsProcessor
from modeling_ups.modeling_ups import CACHE_FIELD, UPSEncoderOutput, shift_tokens_right
from test_modeling import MIXED, check_well_formed, make_batch, make_labels, tiny_config
from ups_checkpoint import randomise_untrained_parts, single_thread  # noqa: F401  (single_thread is a fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

torch_device = os.environ.get("TRANSFORMERS_TEST_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
requires_accelerator = pytest.mark.skipif(torch_device == "cpu", reason="needs an accelerator (CUDA)")

REMOVED_IN_V5 = "removed from transformers' common tests in v5 (the feature no longer exists in the library)"

# Tests whose subject does not change with the config (loading machinery, attention dispatch, generate() options
# UPS refuses): a suite with `run_config_independent_tests = False` skips them, its config being covered by the rest.
CONFIG_INDEPENDENT_TESTS = {
    "test_bc_torch_dtype", "test_from_pretrained_dtype", "test_torch_save_load", "test_load_contiguous_weights",
    "test_disk_offload_bin", "test_disk_offload_safetensors", "test_cpu_offload", "test_device_map_cpu_and_auto",
    "test_can_load_with_device_context_manager", "test_cannot_load_with_meta_device_context_manager",
    "test_sdpa_can_dispatch_non_composite_models", "test_eager_matches_sdpa_inference",
    "test_config_attn_implementation_setter", "test_can_set_attention_dynamically",
    "test_gradient_checkpointing_backward_compatibility", "test_peft_gradient_checkpointing_enable_disable",
    "test_enable_input_require_grads", "test_training_gradient_checkpointing_use_reentrant_false",
    "test_training_gradient_checkpointing_use_reentrant_true", "test_generate_without_input_ids",
    "test_generate_from_encoder_outputs", "test_generate_passes_output_options_to_encoder",
    "test_prepare_inputs_for_generation_kwargs_forwards", "test_min_new_tokens_beyond_fixed_length_is_refused",
    "test_assisted_decoding_is_refused", "test_return_dict_from_config",
}


# transformers' common tests that do not apply to UPS, with the reason: test_not_applicable_to_ups reports each
# as a skip (the list of transformers' tests stays visible), and test_not_applicable_tests_are_not_defined checks
# that none of them is also implemented in the mixins below.
NOT_APPLICABLE = {
    # ModelTesterMixin
    "test_keep_in_fp32_modules":
        "UPS keeps no module in fp32 (no `_keep_in_fp32_modules`); dtype loading is "
        "test_from_pretrained_dtype",
    "test_feed_forward_chunking":
        "UPS implements no feed-forward chunking (config.chunk_size_feed_forward is not read)",
    "test_resize_position_vector_embeddings":
        "test_resize_position_embeddings is False (as for most models): no resize_position_embeddings",
    "test_inputs_embeds_matches_input_ids":
        "UPS's encoder input is a skeleton sequence (pose_values), there are no input_ids / inputs_embeds",
    "test_problem_types":
        "for sequence/image classification heads (problem_type); UPS classifies by generating a label",
    "test_load_with_mismatched_shapes":
        "for sequence classification heads (num_labels): see test_can_load_ignoring_mismatched_shapes",
    "test_eager_matches_batched_and_grouped_inference":
        "for mixture-of-experts models (set_experts_implementation); UPS routes whole blocks",
    "test_sliding_window_mask": "UPS has no sliding-window attention",
    "test_headmasking": f"head masking: {REMOVED_IN_V5}",
    "test_head_pruning": f"head pruning: {REMOVED_IN_V5}",
    "test_head_pruning_save_load_from_pretrained": f"head pruning: {REMOVED_IN_V5}",
    "test_head_pruning_save_load_from_config_init": f"head pruning: {REMOVED_IN_V5}",
    "test_head_pruning_integration": f"head pruning: {REMOVED_IN_V5}",
    "test_torchscript_simple": f"TorchScript tracing: {REMOVED_IN_V5}",
    "test_torchscript_output_attentions": f"TorchScript tracing: {REMOVED_IN_V5}",
    "test_torchscript_output_hidden_state": f"TorchScript tracing: {REMOVED_IN_V5}",
    "test_torch_fx": f"torch.fx symbolic tracing: {REMOVED_IN_V5}",
    "test_save_load_fast_init_from_base":
        f"fast init: {REMOVED_IN_V5} (meta-device init is test_can_init_all_missing_weights)",
    "test_save_load_fast_init_to_base":
        f"fast init: {REMOVED_IN_V5} (meta-device init is test_can_init_all_missing_weights)",
    "test_initialization":
        f"_config_zero_init initialisation check: {REMOVED_IN_V5} (test_can_init_all_missing_weights)",
    "test_pt_tf_model_equivalence": f"TensorFlow/Flax cross tests: {REMOVED_IN_V5}",
    "test_get_text_features_output": "for multimodal models with get_text/image/audio/video_features; UPS has none",
    "test_can_load_from_already_mapped_keys":
        "UPS has no weight conversion mapping (checkpoint keys are the module names)",
    "test_attn_implementation_composite_models": "UPS is not a composite model (one config, no sub-models)",
    "test_sdpa_can_dispatch_composite_models": "UPS is not a composite model (one config, no sub-models)",
    "test_can_set_attention_dynamically_composite_model": "UPS is not a composite model (one config, no sub-models)",
    "test_flash_attn_2_can_dispatch_composite_models":
        "UPS does not declare flash-attention support; not a composite model",
    "test_flash_attn_2_from_config": "UPS does not declare flash-attention support (_supports_flash_attn is False)",
    "test_flash_attn_2_fp32_ln": "UPS does not declare flash-attention support; needs bitsandbytes and flash-attn",
    "test_sdpa_can_dispatch_on_flash":
        "slow accelerator test of flash-kernel SDPA without attention masks; UPS's attention always takes "
        "a mask (padded frames and absent persons of the skeleton memory)",
    "test_sdpa_can_compile_dynamic": "slow torch.compile test (transformers runs it with @slow on accelerators only)",
    "test_torch_compile_for_training": "slow torch.compile test (transformers runs it with @slow on accelerators only)",
    "test_torch_export":
        "UPS's encoder computes present persons' rows only and groups rows per routed block "
        "(data-dependent shapes through nonzero()), which torch.export cannot trace statically",
    "test_multi_gpu_data_parallel_forward": "needs two GPUs",
    "test_model_parallelism": "needs two accelerators",
    "test_can_load_with_global_device_set":
        "needs an accelerator and a subprocess; test_can_load_with_device_context_manager covers loading "
        "under a device",
    # GenerationTesterMixin
    "test_model_parallel_beam_search": "needs two accelerators",
    "test_generate_with_quant_cache":
        "needs optimum-quanto (quantized KV cache); UPS caches a few positions per output",
    "test_generate_compilation_all_outputs":
        "UPS does not declare _can_compile_fullgraph (transformers skips these tests then)",
    "test_generate_from_inputs_embeds": "UPS has no input embeddings (the encoder input is a skeleton sequence)",
    "test_generate_from_random_inputs_embeds": "UPS has no input embeddings (the encoder input is a skeleton sequence)",
    "test_generate_from_inputs_embeds_with_static_cache":
        "UPS has no input embeddings (the encoder input is a skeleton sequence)",
    "test_generate_continue_from_inputs_embeds":
        "UPS has no input embeddings (the encoder input is a skeleton sequence)",
    "test_left_padding_compatibility":
        "decoder-only prompt padding; UPS's decoder prompt is the start token alone, and encoder padding "
        "(frames, persons, joints) is test_batching_equivalence",
    "test_eager_padding_matches_padding_free_with_position_ids":
        "padding-free (packed) decoder-only training with position_ids; not applicable to UPS",
    "test_sdpa_padding_matches_padding_free_with_position_ids":
        "padding-free (packed) decoder-only training with position_ids; not applicable to UPS",
    "test_flash_attention_2_continue_generate_with_position_ids": "UPS does not declare flash-attention support",
    "test_forward_with_logits_to_keep":
        "UPS's forward has no logits_to_keep (generation decodes a few tokens per output)",
    "test_assisted_decoding_with_logits_to_keep":
        "UPS refuses assisted decoding (test_assisted_decoding_is_refused) and has no logits_to_keep",
    "test_assisted_decoding_matches_greedy_search": "UPS refuses assisted decoding: test_assisted_decoding_is_refused",
    "test_prompt_lookup_decoding_matches_greedy_search":
        "UPS refuses prompt-lookup decoding: test_assisted_decoding_is_refused",
    "test_assisted_decoding_sample": "UPS refuses assisted decoding: test_assisted_decoding_is_refused",
    "test_group_beam_search_generate": f"group (diverse) beam search: {REMOVED_IN_V5} (moved to Hub custom_generate)",
    "test_constrained_beam_search_generate": f"constrained beam search: {REMOVED_IN_V5} (moved to Hub custom_generate)",
    "test_contrastive_generate": f"contrastive search: {REMOVED_IN_V5} (moved to Hub custom_generate)",
    "test_dola_decoding_sample": f"DoLa decoding: {REMOVED_IN_V5} (moved to Hub custom_generate)",
    "test_beam_search_low_memory": f"low-memory beam search: {REMOVED_IN_V5}",
}


@pytest.fixture(scope="module", autouse=True)
def float32_math_on_cuda():
    """transformers' tolerances (1e-5 and below) assume float32 arithmetic; on NVIDIA GPUs cuDNN convolutions (the
    joint tokenizer and graph convolutions) default to TF32, whose 10-bit mantissa differs by ~1e-3."""
    if not torch_device.startswith("cuda"):
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # the API that replaces the allow_tf32 flags
        saved = conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
        conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = "ieee", "ieee"
        yield
        conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved
    else:
        saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        yield
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _to_device(inputs: dict) -> dict:
    return {k: v.to(torch_device) if torch.is_tensor(v) else v for k, v in inputs.items()}


def _enable_checkpointing(model, kwargs=None):
    """`activation_checkpointing_enable` (its name since transformers 5.2x; the old name warns), else the old name."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _disable_checkpointing(model):
    if hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


def _is_checkpointing(model) -> bool:
    if hasattr(type(model), "is_activation_checkpointing"):
        return model.is_activation_checkpointing
    return model.is_gradient_checkpointing


def _tied_copies(model) -> set:
    """Names of the state-dict entries that share storage with an earlier entry (what save_pretrained drops)."""
    seen, copies = set(), set()
    for name, tensor in model.state_dict().items():
        storage = id_tensor_storage(tensor)
        if storage in seen:
            copies.add(name)
        seen.add(storage)
    return copies


@contextmanager
def seeded_weight_init():
    """Seed before every module's `_initialize_weights` so two inits draw the same random weights (transformers')."""
    original = PreTrainedModel._initialize_weights

    def seeded(*args, **kwargs):
        set_seed(42)
        original(*args, **kwargs)

    PreTrainedModel._initialize_weights = seeded
    try:
        yield
    finally:
        PreTrainedModel._initialize_weights = original


@contextmanager
def skip_weight_init():
    """Skip `_init_weights` altogether: parameters and buffers keep what the modules' `__init__` gave them."""
    original = PreTrainedModel._initialize_weights
    PreTrainedModel._initialize_weights = lambda *args, **kwargs: None
    try:
        yield
    finally:
        PreTrainedModel._initialize_weights = original


class UPSModelTester:
    """What transformers' `<Model>ModelTester` classes provide: a tiny config and a batch of inputs for it.

    The batch is `test_modeling.MIXED`: one sample of each task, layouts of 25/18/15/20 joints, 1-2 persons and
    9-20 frames, so frames, persons and joints are all padded. `decoder_input_ids` are the shifted targets."""

    is_training = True

    def __init__(self, samples=MIXED, **config_overrides):
        self.samples = samples
        self.config_overrides = config_overrides
        self.batch_size = len(samples)

    def get_config(self) -> UPSConfig:
        return tiny_config(**self.config_overrides)

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        inputs = make_batch(config, self.samples)
        labels = make_labels(config, inputs)
        inputs["decoder_input_ids"] = shift_tokens_right(labels, config.pad_token_id, config.decoder_start_token_id)
        return config, inputs

    # ---- sizes the shape checks need (transformers' testers hold them as attributes)
    @staticmethod
    def num_persons(inputs) -> int:
        return inputs["pose_values"].shape[1]

    @staticmethod
    def encoder_tokens(config, inputs) -> int:
        """Frame tokens per person after the joint tokenizer's temporal downsampling."""
        return math.ceil(inputs["pose_values"].shape[2] / config.temporal_downsampling)

    def memory_length(self, config, inputs) -> int:
        """Length of the encoder memory (the decoder's cross-attention keys): persons x frame tokens."""
        return self.num_persons(inputs) * self.encoder_tokens(config, inputs)

    @staticmethod
    def encoder_token_width(config) -> int:
        """Width of the frame tokens the encoder layers work on (one frame's joint features)."""
        return config.max_joints * int(config.tokenizer_channels[-1])


# ====================================================================================================================
# ModelTesterMixin (transformers/tests/test_modeling_common.py)
# ====================================================================================================================


class ModelTesterMixin:
    model_tester: UPSModelTester = None
    all_model_classes = ()
    is_encoder_decoder = True
    has_attentions = True
    test_all_params_have_gradient = True
    # Parameters that get no gradient from a loss, by design (documented where they are defined). None in UPS:
    # training runs every routing block (straight-through Gumbel gates) and a layout's topology offset gets a zero,
    # not a missing, gradient when the batch lacks that layout.
    parameters_without_gradient = frozenset()
    model_split_percents = [0.5, 0.7, 0.9]
    run_config_independent_tests = True

    @pytest.fixture(autouse=True)
    def _skip_config_independent_tests(self, request):
        if not self.run_config_independent_tests and request.node.originalname in CONFIG_INDEPENDENT_TESTS:
            pytest.skip("does not depend on the config: runs in TestUPSModel")

    @property
    def all_generative_model_classes(self):
        return tuple(c for c in self.all_model_classes if c.can_generate())

    # ---- helpers
    def _make_model(self, model_class, config, attn_implementation=None, seed=0):
        """A model with random weights whose zero-initialised parts (topology refinement, offsets) and batch-norm
        statistics are randomised too, so every branch shapes the outputs; eval mode, on `torch_device`.

        The refinement scale and the offsets are then shrunk tenfold: at test_modeling's scale (std 0.5), with
        running statistics that do not match the activations, encoder features reach 1e7, which overflows float16
        and leaves transformers' absolute tolerances meaningless; here they stay near 1e2, as in a trained model."""
        torch.manual_seed(seed)
        config = copy.deepcopy(config)
        if attn_implementation is None:
            model = model_class(config)
        else:
            model = model_class._from_config(config, attn_implementation=attn_implementation)
        randomise_untrained_parts(model)
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if name.endswith(("alpha", "topology_offset")):
                    tensor.mul_(0.1)
        return model.to(torch_device)

    def _prepare_for_class(self, inputs, model_class, return_labels=False, config=None):
        inputs = copy.deepcopy(inputs)
        if return_labels and model_class is UPSForPoseSequenceModeling:
            inputs["labels"] = make_labels(config or self.model_tester.get_config(), inputs)
        return _to_device(inputs)

    # ---- configuration / size
    def test_num_layers_is_small(self):
        config = self.model_tester.get_config()
        assert config.num_hidden_layers <= 2 and config.encoder_layers <= 2

    def test_model_is_small(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config))
            num_params = model.num_parameters()
            assert num_params < 1_000_000, f"{model_class.__name__} is too big for the common tests ({num_params})"
            # num_parameters counts every distinct parameter once (the tied head is the embedding table) ...
            unique = {p.data_ptr(): p.numel() for p in model.parameters()}
            assert num_params == sum(unique.values())
            assert model.num_parameters(only_trainable=True) == num_params
            # ... and exclude_embeddings drops the embedding tables.
            embeddings = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))
            assert model.num_parameters(exclude_embeddings=True) == num_params - embeddings

    def test_config_attribute_map(self):
        """The common tests read `num_hidden_layers`, `hidden_size` and `num_attention_heads` from every config."""
        config = self.model_tester.get_config()
        assert config.num_hidden_layers == config.decoder_layers
        assert config.hidden_size == config.d_model
        assert config.num_attention_heads == config.decoder_attention_heads
        config.num_hidden_layers = 1
        assert config.decoder_layers == 1

    # ---- save / load
    def test_save_load(self, tmp_path):
        for model_class in self.all_model_classes:
            config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
            model = self._make_model(model_class, config)
            with torch.no_grad():
                first = model(**self._prepare_for_class(inputs, model_class))[0]
            folder = tmp_path / model_class.__name__
            model.save_pretrained(folder)
            # The config file (and the generation config file, if it can generate) should be saved; weights go
            # to safetensors only.
            assert (folder / "config.json").is_file()
            assert model.can_generate() == (folder / "generation_config.json").is_file()
            assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
            attn_implementation = model.config._attn_implementation
            model = model_class.from_pretrained(folder, attn_implementation=attn_implementation).to(torch_device)
            with torch.no_grad():
                second = model.eval()(**self._prepare_for_class(inputs, model_class))[0]
            # Save and load a second time: from_pretrained adds config fields that must load back.
            model.save_pretrained(folder)
            model = model_class.from_pretrained(folder, attn_implementation=attn_implementation).to(torch_device)
            with torch.no_grad():
                third = model.eval()(**self._prepare_for_class(inputs, model_class))[0]
            # The same weights and the same computation: identical, not only close.
            assert torch.equal(first, second) and torch.equal(first, third)

    def test_from_pretrained_no_checkpoint(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = self._make_model(model_class, config)
            state_dict = model.state_dict()
            new_model = model_class.from_pretrained(None, config=copy.deepcopy(config), state_dict=state_dict)
            new_state_dict = new_model.state_dict()
            assert state_dict.keys() == new_state_dict.keys()
            for key in state_dict:
                torch.testing.assert_close(new_state_dict[key].to(torch_device), state_dict[key],
                                           msg=lambda text: f"{key}: {text}")

    def test_keep_in_fp32_modules_exist(self):
        """UPS keeps no module in fp32 (no `_keep_in_fp32_modules` / `_keep_in_fp32_modules_strict`)."""
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config))
            if model._keep_in_fp32_modules or model._keep_in_fp32_modules_strict:
                pytest.fail("UPS declares no fp32 modules; update this test if that changes")

    def test_save_load_keys_to_ignore_on_save(self, tmp_path):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config))
            assert not getattr(model, "_keys_to_ignore_on_save", None)
            # Nothing is ignored: the file holds every persistent tensor, tied copies once, and loads back whole.
            model.save_pretrained(tmp_path)
            saved = safe_load_file(tmp_path / "model.safetensors")
            tied = _tied_copies(model)
            assert tied == ({"lm_head.weight"} if model_class is UPSForPoseSequenceModeling
                            and config.tie_word_embeddings else set())
            assert set(saved) == set(model.state_dict()) - tied
            result = model.load_state_dict(saved, strict=False)
            assert set(result.missing_keys) <= tied and not result.unexpected_keys

    def test_load_contiguous_weights(self, tmp_path):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config))
            assert all(p.is_contiguous() for p in model.parameters())
            model.save_pretrained(tmp_path)
            model = model_class.from_pretrained(tmp_path)
            assert all(p.is_contiguous() for p in model.parameters())

    def test_torch_save_load(self, tmp_path):
        # transformers checks that a state dict saved by torch.save (both zipfile formats) reads back through its
        # `load_state_dict`. UPS's from_pretrained never reads .bin files (test_disk_offload_bin), but the state
        # dict itself must survive torch serialisation.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        model = self._make_model(UPSForPoseSequenceModeling, config)
        state_dict = {k: v.cpu() for k, v in model.state_dict().items()}
        path = tmp_path / "pytorch_model.bin"
        for zipfile in (True, False):
            torch.save(state_dict, path, _use_new_zipfile_serialization=zipfile)
            loaded = load_state_dict(str(path))
            assert loaded.keys() == state_dict.keys()
            for key, value in state_dict.items():
                assert torch.equal(loaded[key], value), key

    def test_can_use_safetensors(self, tmp_path):
        for model_class in self.all_model_classes:
            config, _ = self.model_tester.prepare_config_and_inputs_for_common()
            model_tied = self._make_model(model_class, config)
            model_tied.save_pretrained(tmp_path)
            reloaded, infos = model_class.from_pretrained(tmp_path, output_loading_info=True)
            reloaded_state = reloaded.to(torch_device).state_dict()
            for key, value in model_tied.state_dict().items():
                torch.testing.assert_close(value, reloaded_state[key], msg=lambda text: f"{key}: {text}")
            # Tensors shared in the model are shared after loading (tied the same way by __init__ and loading).
            ptrs = collections.defaultdict(list)
            for key, value in model_tied.state_dict().items():
                ptrs[value.data_ptr()].append(key)
            shared = [names for names in ptrs.values() if len(names) > 1]
            if model_class is UPSForPoseSequenceModeling and config.tie_word_embeddings:
                assert shared == [["model.decoder.embed_tokens.weight", "lm_head.weight"]]
            else:
                assert shared == []
            for names in shared:
                assert len({reloaded_state[k].data_ptr() for k in names}) == 1, names
            assert set(infos["missing_keys"]) == set() and not infos["unexpected_keys"]

    def test_load_save_without_tied_weights(self, tmp_path):
        for model_class in self.all_model_classes:
            config, _ = self.model_tester.prepare_config_and_inputs_for_common()
            config.tie_word_embeddings = False
            model = self._make_model(model_class, config)
            model.save_pretrained(tmp_path)
            with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
                serialized_keys = set(f.keys())
            reloaded, infos = model_class.from_pretrained(tmp_path, output_loading_info=True)
            reloaded_state = reloaded.to(torch_device).state_dict()
            for key, value in model.state_dict().items():
                torch.testing.assert_close(
                    value, reloaded_state[key],
                    msg=lambda text: f"{key} (serialized: {key in serialized_keys}): {text}",
                )
            assert set(infos["missing_keys"]) == set()
            if model_class is UPSForPoseSequenceModeling:
                assert "lm_head.weight" in serialized_keys
                assert reloaded.lm_head.weight.data_ptr() != reloaded.get_input_embeddings().weight.data_ptr()

    def test_tied_weights_keys(self):
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            copied = copy.deepcopy(config)
            copied.tie_word_embeddings = True
            model_tied = model_class(copied)
            tied_weight_keys = _get_tied_weight_keys(model_tied)
            ptrs = collections.defaultdict(list)
            for name, tensor in model_tied.state_dict().items():
                ptrs[id_tensor_storage(tensor)].append(name)
            tied_params = [names for names in ptrs.values() if len(names) > 1]
            # Every declared key is tied in the model ...
            for key in tied_weight_keys:
                assert any(re.search(key, p) for group in tied_params for p in group), key
            # ... and every tied group is declared, all but one member.
            for key in tied_weight_keys:
                tied_params = [[p for p in group if re.search(key, p) is None] for group in tied_params]
            assert [group for group in tied_params if len(group) > 1] == []
            if model_class is UPSForPoseSequenceModeling:
                assert tied_weight_keys and model_tied.lm_head.weight is model_tied.get_input_embeddings().weight

    def test_model_weights_reload_no_missing_tied_weights(self, tmp_path):
        for model_class in self.all_model_classes:
            config, _ = self.model_tester.prepare_config_and_inputs_for_common()
            model = model_class(config)
            model.save_pretrained(tmp_path)
            # Every weight of the file is replaced by a placeholder: every parameter must be reported missing.
            safe_save_file({"tensor": torch.tensor([1, 2])}, str(tmp_path / "model.safetensors"),
                           metadata={"format": "pt"})
            reloaded, infos = model_class.from_pretrained(tmp_path, output_loading_info=True)
            params = dict(reloaded.named_parameters())
            params.update(dict(reloaded.named_buffers()))
            missing = set(infos["missing_keys"])
            extra_missing = missing - set(params)
            ptrs = collections.defaultdict(list)
            for name, tensor in reloaded.state_dict().items():
                ptrs[id_tensor_storage(tensor)].append(name)
            for group in (names for names in ptrs.values() if len(names) > 1):
                if set(group) - extra_missing:
                    extra_missing -= set(group)
            assert extra_missing == set()
            # The skeleton graph's buffers are rebuilt from the config (non-persistent): never reported missing.
            non_persistent = {n for n, _ in reloaded.named_buffers()} - set(reloaded.state_dict())
            assert any(n.endswith("graph.adjacency") for n in non_persistent)
            assert set(params) - missing - non_persistent == set()

    def test_correct_missing_keys(self, tmp_path):
        # Saving the base model and loading the head model must report the head's weights missing. UPS's only head
        # weight is the output projection; tied to the vocabulary table it is not a separate weight, so the check
        # runs on an untied config (a tied one must load with nothing missing).
        for tie in (True, False):
            config = self.model_tester.get_config()
            config.tie_word_embeddings = tie
            model = UPSForPoseSequenceModeling(config)
            extra = {k for k, _ in model.named_parameters() if not k.startswith(model.base_model_prefix)}
            folder = tmp_path / f"tie_{tie}"
            model.base_model.save_pretrained(folder)
            loaded, info = UPSForPoseSequenceModeling.from_pretrained(folder, output_loading_info=True)
            assert extra == (set() if tie else {"lm_head.weight"})
            assert set(info["missing_keys"]) == extra
            torch.testing.assert_close(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)

    def test_from_pretrained_dtype(self, tmp_path):
        """`from_pretrained(dtype=...)` (what test_keep_in_fp32_modules and test_bc_torch_dtype load with): every
        floating parameter and buffer in that dtype, a forward and generate() run, and "auto" keeps the file's dtype."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model = self._make_model(UPSForPoseSequenceModeling, config)
        model.save_pretrained(tmp_path / "fp32")
        inputs = self._prepare_for_class(inputs, UPSForPoseSequenceModeling)
        with torch.no_grad():
            reference = model(**inputs).logits
        reference_tokens = model.generate(**{k: v for k, v in inputs.items() if k != "decoder_input_ids"})
        for dtype in (torch.bfloat16, torch.float16):
            loaded = UPSForPoseSequenceModeling.from_pretrained(tmp_path / "fp32", dtype=dtype).to(torch_device)
            floating = [t for t in list(loaded.parameters()) + list(loaded.buffers()) if t.is_floating_point()]
            assert {t.dtype for t in floating} == {dtype}
            assert loaded.dtype == dtype and loaded.config.dtype == dtype
            with torch.no_grad():
                out = loaded(**inputs)  # float32 pose_values: the model casts its input
            assert out.logits.dtype == dtype and torch.isfinite(out.logits).all()
            torch.testing.assert_close(out.logits.float(), reference, atol=0.1, rtol=0.1)
            tokens = loaded.generate(**{k: v for k, v in inputs.items() if k != "decoder_input_ids"})
            check_well_formed(config, tokens.cpu(), {k: v.cpu() for k, v in inputs.items()})
            assert tokens.shape == reference_tokens.shape
            # A half-precision checkpoint reloads in its own dtype with "auto".
            loaded.save_pretrained(tmp_path / str(dtype))
            auto = UPSForPoseSequenceModeling.from_pretrained(tmp_path / str(dtype), dtype="auto")
            assert auto.dtype == dtype
        assert UPSForPoseSequenceModeling.from_pretrained(tmp_path / "fp32", dtype="auto").dtype == torch.float32

    def test_bc_torch_dtype(self, tmp_path):
        config = self.model_tester.get_config()
        model = UPSForPoseSequenceModeling(copy.deepcopy(config))
        model.save_pretrained(tmp_path)
        for dtype in ("float16", "bfloat16", "float32", "auto", torch.float16, torch.bfloat16, torch.float32):
            with warnings.catch_warnings():
                # `torch_dtype` is transformers' deprecated spelling; its warning is the library's, not the model's.
                warnings.simplefilter("ignore", FutureWarning)
                model_torch_dtype = UPSForPoseSequenceModeling.from_pretrained(tmp_path, torch_dtype=dtype)
            model_dtype = UPSForPoseSequenceModeling.from_pretrained(tmp_path, dtype=dtype)
            for (k1, v1), (k2, v2) in zip(model_torch_dtype.named_parameters(), model_dtype.named_parameters()):
                assert k1 == k2 and v1.dtype == v2.dtype
                torch.testing.assert_close(v1, v2)

    # ---- gradient checkpointing
    def test_gradient_checkpointing_backward_compatibility(self):
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            assert model_class.supports_gradient_checkpointing
            config.gradient_checkpointing = True
            model = model_class(copy.deepcopy(config))
            assert _is_checkpointing(model)

    def test_gradient_checkpointing_enable_disable(self):
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config))
            assert not _is_checkpointing(model)
            # Checkpointing is implemented by GradientCheckpointingLayer: the temporal modules of the encoder blocks
            # and the decoder layers.
            layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
            expected = config.encoder_layers * config.encoder_blocks_per_layer + config.decoder_layers
            assert len(layers) == expected
            _enable_checkpointing(model)
            assert _is_checkpointing(model)
            for name, module in model.named_modules():
                if hasattr(module, "gradient_checkpointing"):
                    assert module.gradient_checkpointing, name
            _disable_checkpointing(model)
            assert not _is_checkpointing(model)
            for name, module in model.named_modules():
                if hasattr(module, "gradient_checkpointing"):
                    assert not module.gradient_checkpointing, name

    def test_peft_gradient_checkpointing_enable_disable(self):
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config))
            assert not _is_checkpointing(model)
            model._hf_peft_config_loaded = True
            _enable_checkpointing(model)
            assert _is_checkpointing(model)
            assert all(m.gradient_checkpointing for m in model.modules() if hasattr(m, "gradient_checkpointing"))
            _disable_checkpointing(model)
            assert not _is_checkpointing(model)
            assert not any(m.gradient_checkpointing for m in model.modules() if hasattr(m, "gradient_checkpointing"))

    def test_enable_input_require_grads(self):
        """With every parameter frozen (as under adapters), the input embeddings' output requires grad after
        enable_input_require_grads and no longer after disable_input_require_grads."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = self._make_model(model_class, config).requires_grad_(False)
            prepared = self._prepare_for_class(inputs, model_class)
            outputs = []
            model.get_input_embeddings().register_forward_hook(lambda module, args, output: outputs.append(output))

            def embedding_output_requires_grad():
                outputs.clear()
                model(**prepared)
                assert outputs
                return all(output.requires_grad for output in outputs)

            assert not embedding_output_requires_grad()
            model.enable_input_require_grads()
            assert embedding_output_requires_grad()
            model.disable_input_require_grads()
            assert not embedding_output_requires_grad()

    # torch warns of each checkpointed layer whose inputs do not require grad: every layer without the hook, the
    # encoder's (frozen, fed by the pose values) with it.
    @pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad=True")
    def test_enable_input_require_grads_with_gradient_checkpointing(self):
        """Frozen embeddings under (reentrant) gradient checkpointing: a checkpointed layer whose inputs do not
        require grad gives no gradient, so with every parameter frozen the loss needs enable_input_require_grads;
        with it, the embedding output requires grad and the backward pass runs through the checkpointed decoder
        layers (recomputing them) back to the embeddings."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.use_cache = False
        model_class = UPSForPoseSequenceModeling
        model = self._make_model(model_class, config).train().requires_grad_(False)
        inputs = self._prepare_for_class(inputs, model_class, return_labels=True, config=config)
        _enable_checkpointing(model, {"use_reentrant": True})
        embedded = []
        model.get_input_embeddings().register_forward_hook(lambda module, args, output: embedded.append(output))
        assert not model(**inputs).loss.requires_grad
        embedded.clear()

        model.enable_input_require_grads()
        layer = model.model.decoder.layers[-1]
        assert isinstance(layer, GradientCheckpointingLayer) and layer.gradient_checkpointing
        sublayer = next(m for m in layer.modules() if isinstance(m, nn.Linear))
        with mock.patch.object(sublayer, "forward", wraps=sublayer.forward) as forward_mock:
            set_seed(42)
            loss = model(**inputs).loss
            calls_in_forward = forward_mock.call_count
            assert calls_in_forward > 0 and loss.requires_grad
            loss.backward()
            # The backward pass reached the checkpointed layer: it ran the layer again.
            assert forward_mock.call_count > calls_in_forward
        assert len(embedded) == 1 and embedded[0].requires_grad
        assert embedded[0].grad is not None and torch.isfinite(embedded[0].grad).all()
        assert embedded[0].grad.abs().sum() > 0
        assert all(p.grad is None for p in model.parameters())

    def check_training_gradient_checkpointing(self, gradient_checkpointing_kwargs=None):
        # Only the head model has a loss (transformers skips base models here too).
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.use_cache = False
        config.return_dict = True
        model_class = UPSForPoseSequenceModeling
        inputs = self._prepare_for_class(inputs, model_class, return_labels=True, config=config)
        model = self._make_model(model_class, config).train()
        for p in model.parameters():
            p.requires_grad_(True)

        # Same seed before each forward: the routing's Gumbel noise must draw the same blocks.
        set_seed(42)
        model(**inputs).loss.backward()
        expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        non_zero_normal = {n for n, g in expected.items() if g.abs().sum() > 0}
        model.zero_grad(set_to_none=True)

        _enable_checkpointing(model, gradient_checkpointing_kwargs)
        layer = next(m for m in model.modules() if isinstance(m, GradientCheckpointingLayer))
        # transformers counts calls of the layer's forward; since 5.2x the checkpoint wrapper recomputes the
        # class's original forward, so count a submodule of the layer instead.
        sublayer = next(m for m in layer.modules() if isinstance(m, nn.Linear))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        with mock.patch.object(sublayer, "forward", wraps=sublayer.forward) as forward_mock:
            set_seed(42)
            model(**inputs).loss.backward()
            # Checkpointing recomputes the layer in the backward pass.
            assert forward_mock.call_count > 1
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        optimizer.step()
        non_zero_checkpointed = {n for n, g in grads.items() if g.abs().sum() > 0}
        assert non_zero_checkpointed == non_zero_normal
        # Stronger than transformers' check: checkpointing changes memory, not gradients.
        assert grads.keys() == expected.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, expected[name], atol=1e-5, rtol=1e-4, msg=lambda text: f"{name}: {text}")
        if self.test_all_params_have_gradient:
            missing = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
            assert missing == self.parameters_without_gradient

    def test_training_gradient_checkpointing(self):
        self.check_training_gradient_checkpointing()

    def test_gradient_checkpointing_turns_cache_off(self):
        """A checkpointed layer runs again in the backward pass: in training with gradients the decoder does not
        use a cache (it would be written twice), with a warning, as in-tree models; without gradients it does."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model = self._make_model(UPSForPoseSequenceModeling, config).train()
        prepared = self._prepare_for_class(inputs, UPSForPoseSequenceModeling)
        _enable_checkpointing(model)
        with mock.patch.object(modeling_ups.modeling_ups.logger, "warning_once") as warn:
            set_seed(42)
            out = model(**prepared, use_cache=True)
        assert getattr(out, CACHE_FIELD) is None
        assert any("gradient checkpointing" in call.args[0] for call in warn.call_args_list)
        out.logits.sum().backward()
        with torch.no_grad():
            out = model(**prepared, use_cache=True)
        assert getattr(out, CACHE_FIELD).get_seq_length() == inputs["decoder_input_ids"].shape[1]

    def test_training_gradient_checkpointing_use_reentrant_false(self):
        self.check_training_gradient_checkpointing({"use_reentrant": False})

    def test_training_gradient_checkpointing_use_reentrant_true(self):
        self.check_training_gradient_checkpointing({"use_reentrant": True})

    # ---- training
    def test_training(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.return_dict = True
        model_class = UPSForPoseSequenceModeling
        model = self._make_model(model_class, config).train()
        inputs = self._prepare_for_class(inputs, model_class, return_labels=True, config=config)
        out = model(**inputs)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        out.loss.backward()
        missing = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
        assert missing == self.parameters_without_gradient
        for name, p in model.named_parameters():
            if p.grad is not None:
                assert torch.isfinite(p.grad).all(), name
        # Parameters every batch uses must get a non-zero gradient: the vocabulary, the memory projection and, when
        # there is a choice of blocks, the routing (with one block per layer its straight-through gate is constant).
        names = ["model.decoder.embed_tokens.weight", "model.encoder.output_proj.weight"]
        if config.encoder_blocks_per_layer > 1:
            names += ["model.encoder.routing.task_embedding.weight", "model.encoder.routing.block_embeddings.weight"]
        for name in names:
            assert model.get_parameter(name).grad.abs().sum() > 0, name

    # ---- initialisation
    def test_can_init_all_missing_weights(self):
        """Every weight is handled by `_init_weights`: a model whose weights are all missing from the checkpoint
        (initialised from meta by `_init_weights` alone) equals one built by `__init__`, with the same seeds."""
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            with seeded_weight_init():
                model_from_init = model_class(copy.deepcopy(config))
                model_from_pretrained = model_class.from_pretrained(None, config=copy.deepcopy(config), state_dict={})
            on_meta = [k for k, v in list(model_from_pretrained.named_parameters())
                       + list(model_from_pretrained.named_buffers()) if v.device.type == "meta"]
            assert on_meta == []
            from_pretrained = model_from_pretrained.state_dict()
            from_init = model_from_init.state_dict()
            assert sorted(from_pretrained) == sorted(from_init)
            different = sorted(k for k, v in from_init.items() if not torch.equal(v, from_pretrained[k]))
            assert different == [], f"not handled by _init_weights: {different}"

    def test_init_weights_can_init_buffers(self):
        """Buffers (persistent and not) are set by `_init_weights`: a model materialised from meta and initialised
        equals what the modules' `__init__` built."""
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            with skip_weight_init():
                model_from_init = model_class(copy.deepcopy(config))
            with torch.device("meta"):
                model_from_meta = model_class(copy.deepcopy(config))
            model_from_meta.to_empty(device="cpu")
            model_from_meta.init_weights()
            buffers_init = dict(model_from_init.named_buffers())
            buffers_meta = dict(model_from_meta.named_buffers())
            assert sorted(buffers_init) == sorted(buffers_meta)
            different = sorted(k for k, v in buffers_init.items() if not torch.equal(v, buffers_meta[k]))
            assert different == [], f"buffers not handled by _init_weights: {different}"

    def test_all_tensors_are_parameter_or_buffer(self):
        set_seed(42)
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            with torch.device("meta"):
                model = model_class(copy.deepcopy(config)).eval()
            model.to_empty(device=torch_device)
            model.init_weights()
            out = model(**self._prepare_for_class(inputs, model_class))
            assert torch.isfinite(out[0]).all()

    def test_post_init_sanity(self):
        """post_init ran: weights initialised as `_init_weights` documents (not torch's defaults), tied head."""
        config = self.model_tester.get_config()
        model = UPSForPoseSequenceModeling(copy.deepcopy(config))
        table = model.get_input_embeddings().weight
        assert abs(table.std().item() - config.init_std) < 0.3 * config.init_std
        for name, module in model.named_modules():
            if isinstance(module, nn.LayerNorm):
                assert torch.equal(module.weight, torch.ones_like(module.weight)), name
                assert torch.equal(module.bias, torch.zeros_like(module.bias)), name
            if type(module).__name__ == "UPSGraphConvolution":
                assert module.alpha.item() == 0 and not module.topology_offset.any(), name
            if type(module).__name__ == "UPSTaskBatchNorm":
                assert not module.running_mean.any() and (module.running_var == 1).all(), name
        routing = model.model.encoder.routing
        expected_std = config.routing_embedding_dim**-0.25
        assert abs(routing.task_embedding.weight.std().item() - expected_std) < 0.5 * expected_std
        assert (model.lm_head.weight is table) == config.tie_word_embeddings

    def test_can_be_initialized_on_meta(self):
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            with torch.device("meta"):
                model = model_class(copy.deepcopy(config))
            assert {p.device.type for p in model.parameters()} == {"meta"}

    # ---- forward
    def test_determinism(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = self._make_model(model_class, config)
            with torch.no_grad():
                first = model(**self._prepare_for_class(inputs, model_class))[0]
                second = model(**self._prepare_for_class(inputs, model_class))[0]
            torch.testing.assert_close(first, second, atol=1e-5, rtol=0)

    def test_batching_equivalence(self):
        """Each row of a batch gives the outputs it gives alone (eval mode). transformers compares the first row of
        every floating output; here every row, every output (hidden states included). Batch rows are compared
        alone as they sit in the batch (padded); test_modeling.test_padded_batch_equals_one_by_one compares them
        unpadded."""

        def recursive_check(batched, single, key):
            if isinstance(batched, (list, tuple)):
                for b, s in zip(batched, single):
                    recursive_check(b, s, key)
            elif isinstance(batched, dict):
                for b, s in zip(batched.values(), single.values()):
                    recursive_check(b, s, key)
            elif batched is None or not torch.is_tensor(batched) or batched.dim() == 0:
                return
            elif not torch.is_floating_point(batched):
                assert torch.equal(batched[: single.shape[0]], single), key  # routing decisions, masks
            else:
                assert torch.isfinite(batched).all() and torch.isfinite(single).all(), key
                # 1e-4: CPU kernels may block and sum differently for another batch size (1.4e-5 seen on an Intel
                # Xeon); a row that read another row's inputs would differ by orders of magnitude more.
                torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4, msg=lambda text: f"{key}: {text}")

        set_seed(42)
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.output_hidden_states = True
        for model_class in self.all_model_classes:
            for attn_implementation in ("eager", "sdpa"):
                model = self._make_model(model_class, config, attn_implementation=attn_implementation)
                prepared = self._prepare_for_class(inputs, model_class)
                output_attentions = attn_implementation == "eager"
                with torch.no_grad():
                    batched = model(**prepared, output_attentions=output_attentions, use_cache=False)
                    for i in range(self.model_tester.batch_size):
                        row = {k: v[i : i + 1] if torch.is_tensor(v) else v for k, v in prepared.items()}
                        single = model(**row, output_attentions=output_attentions, use_cache=False)
                        for key in batched.keys():
                            value = batched[key]
                            if isinstance(value, (tuple, list)):
                                value = tuple(v[i : i + 1] if torch.is_tensor(v) else v for v in value)
                            elif torch.is_tensor(value) and value.dim() > 0:
                                value = value[i : i + 1]
                            recursive_check(value, single[key], f"{model_class.__name__}.{key}[{i}]")
        # A row keeps the batch's zero padding of joints beyond its own layout (above); data there is refused, since
        # no layout of the row can place it.
        row = {k: v[1:2] for k, v in self._prepare_for_class(inputs, UPSForPoseSequenceModeling).items()}
        joints = config.layouts[int(row["layout_ids"][0])]["num_joints"]
        assert row["pose_values"].shape[3] > joints
        row["pose_values"][..., joints, :] = 1.0
        with pytest.raises(ValueError, match="must be zero"):
            model(**row)

    def test_model_forward_default_config_values(self):
        """A config built without the common token/tying attributes falls back to defaults and runs."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config_dict = config.to_diff_dict()
        for key in ("pad_token_id", "eos_token_id", "bos_token_id", "sep_token_id", "tie_word_embeddings"):
            config_dict.pop(key, None)
        config = config.__class__(**config_dict)
        assert config.tie_word_embeddings is True and config.eos_token_id == list(config.eot_token_ids)
        for special in ("pad_token_id", "eos_token_id", "bos_token_id", "sep_token_id"):
            if hasattr(config, special):
                setattr(config, special, 0)
        row = {k: v[:1] for k, v in inputs.items()}
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config)).to(torch_device).eval()
            with torch.no_grad():
                assert torch.isfinite(model(**_to_device(row))[0]).all()

    def test_model_outputs_equivalence(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()

        def check_equivalence(model, tuple_inputs, dict_inputs, additional_kwargs=None):
            additional_kwargs = additional_kwargs or {}
            with torch.no_grad():
                tuple_output = model(**tuple_inputs, return_dict=False, **additional_kwargs)
                dict_output = model(**dict_inputs, return_dict=True, **additional_kwargs).to_tuple()
            assert isinstance(tuple_output, tuple) and len(tuple_output) == len(dict_output)

            def recursive_check(tuple_object, dict_object):
                if isinstance(tuple_object, (list, tuple)):
                    assert len(tuple_object) == len(dict_object)
                    for t, d in zip(tuple_object, dict_object):
                        recursive_check(t, d)
                elif isinstance(tuple_object, dict):
                    assert tuple_object.keys() == dict_object.keys()
                    for t, d in zip(tuple_object.values(), dict_object.values()):
                        recursive_check(t, d)
                elif tuple_object is None:
                    assert dict_object is None
                elif torch.is_tensor(tuple_object):
                    torch.testing.assert_close(tuple_object, dict_object, atol=1e-5, rtol=0)

            recursive_check(tuple_output, dict_output)

        for model_class in self.all_model_classes:
            model = self._make_model(model_class, config, attn_implementation="eager")
            for return_labels in (False, True):
                if return_labels and model_class is not UPSForPoseSequenceModeling:
                    continue
                for extra in ({}, {"output_hidden_states": True}, {"output_attentions": True},
                              {"output_hidden_states": True, "output_attentions": True}):
                    prepared = self._prepare_for_class(inputs, model_class, return_labels=return_labels, config=config)
                    check_equivalence(model, prepared, copy.deepcopy(prepared), extra)

    def test_return_dict_from_config(self):
        """`config.return_dict=False` is honoured when the call does not pass `return_dict`, by every forward."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.return_dict = False
        for model_class in self.all_model_classes:
            model = self._make_model(model_class, config)
            prepared = self._prepare_for_class(inputs, model_class)
            with torch.no_grad():
                assert isinstance(model(**prepared), tuple)
                assert not isinstance(model(**prepared, return_dict=True), tuple)
                encoder = model.get_encoder()
                enc_inputs = {k: v for k, v in prepared.items() if k != "decoder_input_ids"}
                assert isinstance(encoder(**enc_inputs), tuple)
                # generate() reads the encoder output by name whatever the config says.
                if model.can_generate():
                    assert model.generate(**enc_inputs).shape[0] == self.model_tester.batch_size

    # ---- attentions and hidden states
    def _check_encoder_attentions(self, attentions, config, inputs):
        # UPSEncoderOutput: one per encoder layer, (batch, persons, encoder heads, frame tokens, frame tokens): the
        # temporal self-attention of the block each sample was routed to, per person.
        tokens = self.model_tester.encoder_tokens(config, inputs)
        assert isinstance(attentions, tuple) and len(attentions) == config.encoder_layers
        expected = (inputs["pose_values"].shape[0], self.model_tester.num_persons(inputs),
                    config.encoder_attention_heads, tokens, tokens)
        assert [tuple(a.shape) for a in attentions] == [expected] * config.encoder_layers
        for a in attentions:  # rows of real frames of present persons are probability distributions
            sums = a.sum(-1)
            assert torch.allclose(sums[sums > 0], torch.ones_like(sums[sums > 0]), atol=1e-5)

    def test_attention_outputs(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.return_dict = True
        config._attn_implementation = "eager"  # attention weights need eager attention
        decoder_length = inputs["decoder_input_ids"].shape[1]
        memory_length = self.model_tester.memory_length(config, inputs)
        for model_class in self.all_model_classes:
            call_inputs = dict(inputs, output_attentions=True, output_hidden_states=False)
            model = self._make_model(model_class, config, attn_implementation="eager")
            with torch.no_grad():
                outputs = model(**self._prepare_for_class(call_inputs, model_class))
            self._check_encoder_attentions(outputs.encoder_attentions, config, inputs)

            # output_attentions from the config
            config_with = copy.deepcopy(config)
            config_with.output_attentions = True
            model = self._make_model(model_class, config_with)
            with torch.no_grad():
                outputs = model(**self._prepare_for_class(inputs, model_class))
            self._check_encoder_attentions(outputs.encoder_attentions, config, inputs)
            out_len = len(outputs)
            decoder_attentions = outputs.decoder_attentions
            assert isinstance(decoder_attentions, (list, tuple)) and len(decoder_attentions) == config.num_hidden_layers
            expected = [config.num_attention_heads, decoder_length, decoder_length]
            assert list(decoder_attentions[0].shape[-3:]) == expected
            # causal: no weight on later positions
            assert not torch.triu(decoder_attentions[0], diagonal=1).any()
            cross_attentions = outputs.cross_attentions
            assert isinstance(cross_attentions, (list, tuple)) and len(cross_attentions) == config.num_hidden_layers
            assert list(cross_attentions[0].shape[-3:]) == [config.num_attention_heads, decoder_length, memory_length]
            # no weight on padded memory tokens
            memory_mask = outputs.encoder_attention_mask.bool()[:, None, None, :].expand_as(cross_attentions[0])
            assert (cross_attentions[0][~memory_mask] < 1e-6).all()

            # Asking for hidden states too adds exactly the two hidden states to the output, attentions unchanged.
            model = self._make_model(model_class, config_with)
            with torch.no_grad():
                outputs = model(**self._prepare_for_class(dict(inputs, output_hidden_states=True), model_class))
            assert len(outputs) == out_len + 2
            self._check_encoder_attentions(outputs.encoder_attentions, config, inputs)

    def test_attention_outputs_with_sdpa_warn_and_are_empty(self):
        """As in-tree models: sdpa cannot return weights, so output_attentions gives empty tuples and a warning."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model = self._make_model(UPSForPoseSequenceModeling, config, attn_implementation="sdpa")
        with torch.no_grad(), mock.patch.object(modeling_ups.modeling_ups.logger, "warning_once") as warn:
            outputs = model(**self._prepare_for_class(inputs, UPSForPoseSequenceModeling), output_attentions=True)
        assert outputs.encoder_attentions == () and outputs.decoder_attentions == () and outputs.cross_attentions == ()
        assert warn.called and "eager" in warn.call_args[0][0]

    def test_hidden_states_output(self):
        def check_hidden_states_output(call_inputs, config, model_class):
            model = self._make_model(model_class, config)
            with torch.no_grad():
                outputs = model(**self._prepare_for_class(call_inputs, model_class))
            # Encoder: the frame tokens entering the first layer and leaving every layer, (batch, persons x frame
            # tokens, joints x width) (UPSEncoderOutput documents why they are wider than d_model).
            hidden_states = outputs.encoder_hidden_states
            assert len(hidden_states) == config.encoder_layers + 1
            expected = [self.model_tester.memory_length(config, inputs), self.model_tester.encoder_token_width(config)]
            assert all(list(h.shape[-2:]) == expected for h in hidden_states)
            # They are the encoder's real states: the memory is the projection of the last one.
            encoder = model.get_encoder()
            memory = encoder.layer_norm(encoder.output_proj(hidden_states[-1]))
            mask = outputs.encoder_attention_mask.bool()
            torch.testing.assert_close(memory[mask], outputs.encoder_last_hidden_state[mask], atol=1e-5, rtol=1e-5)
            assert not (hidden_states[0] == hidden_states[1]).all()
            # Decoder: embeddings then every layer, (batch, length, d_model); the last one is the output.
            hidden_states = outputs.decoder_hidden_states
            assert isinstance(hidden_states, (list, tuple)) and len(hidden_states) == config.num_hidden_layers + 1
            decoder_length = call_inputs["decoder_input_ids"].shape[1]
            assert all(list(h.shape[-2:]) == [decoder_length, config.hidden_size] for h in hidden_states)
            last = outputs.logits if model_class is UPSForPoseSequenceModeling else outputs.last_hidden_state
            if model_class is UPSForPoseSequenceModeling:
                torch.testing.assert_close(model.lm_head(hidden_states[-1]), last)
            else:
                torch.testing.assert_close(hidden_states[-1], last)

        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            check_hidden_states_output(dict(inputs, output_hidden_states=True), config, model_class)
            config_with = copy.deepcopy(config)
            config_with.output_hidden_states = True
            check_hidden_states_output(inputs, config_with, model_class)
            # Asking for them changes nothing else: the outputs are identical with and without.
            model = self._make_model(model_class, config)
            prepared = self._prepare_for_class(inputs, model_class)
            with torch.no_grad():
                with_states = model(**prepared, output_hidden_states=True)
                without = model(**prepared)
            assert torch.equal(with_states[0], without[0])
            assert torch.equal(with_states.encoder_last_hidden_state, without.encoder_last_hidden_state)

    def test_retain_grad_hidden_states_attentions(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.output_hidden_states = True
        config.output_attentions = True
        model = self._make_model(self.all_model_classes[0], config, attn_implementation="eager")
        outputs = model(**self._prepare_for_class(inputs, self.all_model_classes[0]))
        retained = {
            "encoder_hidden_states": outputs.encoder_hidden_states[0],
            "decoder_hidden_states": outputs.decoder_hidden_states[0],
            "decoder_attentions": outputs.decoder_attentions[0],
            "cross_attentions": outputs.cross_attentions[0],
        }
        for tensor in retained.values():
            tensor.retain_grad()
        encoder_attentions = outputs.encoder_attentions[0]
        encoder_attentions.retain_grad()
        outputs[0].flatten()[0].backward(retain_graph=True)
        for name, tensor in retained.items():
            assert tensor.grad is not None, name
        # Not retained: encoder attentions are reported per sample (batch, persons, heads, T', T'), scattered from
        # the per-person rows the attention computed with, so the gradient reaches those rows, not the report.
        assert encoder_attentions.grad is None

    # ---- things UPS does not have
    def test_inputs_embeds(self):
        """UPS's encoder input is a skeleton sequence (pose_values), there are no input embeddings."""
        assert "inputs_embeds" not in inspect.signature(UPSForPoseSequenceModeling.forward).parameters

    def test_capture_outputs_decorator(self):
        """UPS collects hidden states and attentions itself, without the capture_outputs decorator."""
        model = UPSForPoseSequenceModeling(self.model_tester.get_config())
        assert not any(getattr(m, "_can_record_outputs", None) for m in model.modules()
                       if isinstance(m, PreTrainedModel))

    def test_tp_plan_matches_params(self):
        """UPS has no tensor-parallel plan."""
        assert self.model_tester.get_config().base_model_tp_plan is None

    def test_reverse_loading_mapping(self):
        """UPS has no weight conversion mapping (checkpoint keys are the module names)."""
        from transformers.conversion_mapping import get_model_conversion_mapping

        model = UPSForPoseSequenceModeling(self.model_tester.get_config())
        assert len(get_model_conversion_mapping(model, add_legacy=False)) == 0

    def test_internal_model_config_and_subconfig_are_same(self):
        """UPSConfig has no sub-configs."""
        assert self.model_tester.get_config().sub_configs == {}

    def test_flash_attn_2_inference_equivalence(self):
        """UPS does not declare flash-attention support (_supports_flash_attn is False); needs flash-attn."""
        assert not UPSForPoseSequenceModeling._supports_flash_attn

    def test_flex_attention_with_grads(self):
        """UPS does not declare flex-attention support (_supports_flex_attn is False)."""
        assert not UPSForPoseSequenceModeling._supports_flex_attn

    # ---- embeddings
    def test_model_get_set_embeddings(self):
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config))
            assert isinstance(model.get_input_embeddings(), nn.Embedding)
            new = nn.Embedding(10, 10)
            model.set_input_embeddings(new)
            assert model.get_input_embeddings() is new
            x = model.get_output_embeddings()
            assert x is None or isinstance(x, nn.Linear)
        assert isinstance(UPSForPoseSequenceModeling(config).get_output_embeddings(), nn.Linear)

    def _check_resize_refused(self, model, config, new_size, **kwargs):
        embeddings = model.get_input_embeddings().weight.detach().clone()
        head = model.get_output_embeddings()
        head_weight = head.weight.detach().clone() if head is not None else None
        with pytest.raises(ValueError, match="cannot resize its vocabulary"):
            model.resize_token_embeddings(new_size, **kwargs)
        # Refused before touching any weight: sizes, values, tying and the config are unchanged.
        assert torch.equal(model.get_input_embeddings().weight, embeddings)
        if head is not None:
            assert model.get_output_embeddings() is head and torch.equal(head.weight, head_weight)
        assert model.config.vocab_size == config.vocab_size == embeddings.shape[0]

    def test_resize_tokens_embeddings(self):
        """UPS refuses to resize: the vocabulary's size follows from num_label_tokens and num_bins (the ids of bins
        and end-of-task tokens are derived from them). transformers resizes by +10 / -15 / pad_to_multiple_of; each
        must raise before touching a weight, and the model must still run."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = self._make_model(model_class, config)
            vocab = config.vocab_size
            same = model.resize_token_embeddings(vocab)
            assert same is model.get_input_embeddings() and same.weight.shape[0] == vocab
            assert model.resize_token_embeddings() is model.get_input_embeddings()
            for new_size, kwargs in ((vocab + 10, {}), (vocab - 15, {}), (vocab, {"pad_to_multiple_of": 64}),
                                     (vocab + 13, {"pad_to_multiple_of": 64}), (vocab, {"pad_to_multiple_of": 1.3})):
                self._check_resize_refused(model, config, new_size, **kwargs)
            with torch.no_grad():
                model(**self._prepare_for_class(inputs, model_class))
            if model_class is UPSForPoseSequenceModeling:
                tied = model.lm_head.weight is model.get_input_embeddings().weight
                assert tied == config.tie_word_embeddings

    def test_resize_embeddings_untied(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.tie_word_embeddings = False
        model = self._make_model(UPSForPoseSequenceModeling, config)
        assert model.lm_head.weight is not model.get_input_embeddings().weight
        for new_size in (config.vocab_size + 10, config.vocab_size - 15):
            self._check_resize_refused(model, config, new_size)
        assert model.lm_head.weight is not model.get_input_embeddings().weight
        with torch.no_grad():
            model(**self._prepare_for_class(inputs, UPSForPoseSequenceModeling))

    def test_can_load_ignoring_mismatched_shapes(self, tmp_path):
        """UPS's counterpart of transformers' mismatched-head test (docs: "build a UPSConfig with another
        num_label_tokens ... and load the weights with ignore_mismatched_sizes=True"): the vocabulary tables are
        re-initialised, every other weight loads unchanged."""
        config = self.model_tester.get_config()
        model = self._make_model(UPSForPoseSequenceModeling, config)
        model.save_pretrained(tmp_path)
        with pytest.raises((RuntimeError, ValueError)):
            UPSForPoseSequenceModeling.from_pretrained(tmp_path, num_label_tokens=config.num_label_tokens + 5)
        new_model, info = UPSForPoseSequenceModeling.from_pretrained(
            tmp_path, num_label_tokens=config.num_label_tokens + 5, ignore_mismatched_sizes=True,
            output_loading_info=True,
        )
        new_vocab = config.vocab_size + 5
        assert new_model.config.vocab_size == new_vocab
        assert new_model.get_input_embeddings().weight.shape[0] == new_vocab
        vocabulary = {"model.decoder.embed_tokens.weight"}
        if config.tie_word_embeddings:
            assert new_model.lm_head.weight is new_model.get_input_embeddings().weight
        else:
            vocabulary.add("lm_head.weight")
            assert new_model.lm_head.weight.shape[0] == new_vocab
        assert {k[0] if isinstance(k, tuple) else k for k in info["mismatched_keys"]} == vocabulary
        old = dict(model.named_parameters())
        for name, value in new_model.named_parameters():
            if name not in vocabulary:
                torch.testing.assert_close(value.to(torch_device), old[name], msg=lambda text: f"{name}: {text}")
        assert abs(new_model.get_input_embeddings().weight.mean().item()) < 0.1

    # ---- structure and names
    def test_model_main_input_name(self):
        for model_class in self.all_model_classes:
            parameters = list(inspect.signature(model_class.forward).parameters)
            assert model_class.main_input_name == parameters[1] == "pose_values"

    def test_model_base_model_prefix(self):
        config = self.model_tester.get_config()
        for model_class in self.all_generative_model_classes:
            model = model_class(copy.deepcopy(config))
            assert model.base_model is not model and isinstance(model.base_model, UPSModel)

    def test_generation_tester_mixin_inheritance(self):
        assert self.all_generative_model_classes == (UPSForPoseSequenceModeling,)
        assert not UPSModel.can_generate()

    # ---- attention implementations
    def test_sdpa_can_dispatch_non_composite_models(self, tmp_path):
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            assert model_class._supports_sdpa
            model = model_class(copy.deepcopy(config))
            model.save_pretrained(tmp_path)
            model_sdpa = model_class.from_pretrained(tmp_path)
            assert model_sdpa.config._attn_implementation == "sdpa"
            model_eager = model_class.from_pretrained(tmp_path, attn_implementation="eager")
            assert model_eager.config._attn_implementation == "eager"
            attention_modules = [m for m in model_eager.modules() if type(m).__name__.endswith("Attention")]
            assert attention_modules and all(m.config._attn_implementation == "eager" for m in attention_modules)

    @pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
    @pytest.mark.parametrize("output_attentions", [False, True])
    def test_eager_matches_sdpa_inference(self, dtype, output_attentions, tmp_path):
        """transformers' tolerances per (device, dtype); the batch pads frames, persons and joints, which UPS masks
        in attention (the counterpart of transformers' padding_side cases)."""
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        atol = {torch.float32: 1e-6, torch.float16: 5e-3, torch.bfloat16: 1e-2}[dtype]
        rtol = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 1e-2}[dtype]
        set_seed(42)
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = self._make_model(model_class, config)
            folder = tmp_path / model_class.__name__
            model.save_pretrained(folder)
            model_sdpa = model_class.from_pretrained(folder, dtype=dtype, attn_implementation="sdpa")
            model_sdpa = model_sdpa.eval().to(torch_device)
            model_eager = copy.deepcopy(model_sdpa)
            model_eager.set_attn_implementation("eager")
            assert model_eager.config._attn_implementation == "eager"
            assert model_sdpa.config._attn_implementation == "sdpa"
            prepared = self._prepare_for_class(inputs, model_class)
            prepared["pose_values"] = prepared["pose_values"].to(dtype)
            with torch.no_grad():
                eager = model_eager(**prepared, output_hidden_states=True, output_attentions=output_attentions)
                sdpa = model_sdpa(**prepared, output_hidden_states=True)
            # transformers compares the decoder's last hidden state (bf16: atol grows with the outputs' magnitude).
            # The encoder's frame tokens reach ~1e2, where a half-precision ulp alone is 6e-2: their atol scales
            # with the magnitude in both half types.
            for key in ("decoder_hidden_states", "encoder_hidden_states"):
                a, b = eager[key][-1], sdpa[key][-1]
                magnitude = float(torch.max(a.abs().amax(), b.abs().amax()))
                tolerance = atol
                if dtype == torch.bfloat16:
                    tolerance = max(atol, magnitude * 3e-2)
                elif dtype == torch.float16 and key == "encoder_hidden_states":
                    tolerance = max(atol, magnitude * 2e-3)
                torch.testing.assert_close(b, a, atol=tolerance, rtol=rtol, msg=lambda text: f"{key}: {text}")
            if output_attentions:
                attentions = eager.encoder_attentions
                assert len(attentions) == config.encoder_layers and all(a.dtype == dtype for a in attentions)
                if dtype == torch.float32:
                    self._check_encoder_attentions(attentions, config, inputs)

    def test_config_attn_implementation_setter(self):
        config = self.model_tester.get_config()
        config_dict = config.to_diff_dict()
        config_dict.pop("_attn_implementation_internal", None)
        config_dict.pop("_attn_implementation", None)
        config_dict["attn_implementation"] = "eager"
        config = type(config)(**config_dict)
        assert config._attn_implementation == "eager"
        config._attn_implementation = "sdpa"
        assert config._attn_implementation == "sdpa"
        config._attn_implementation = "eager"
        assert config._attn_implementation == "eager"

    def test_can_set_attention_dynamically(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            assert model_class._can_set_attn_implementation()
            model_config = copy.deepcopy(config)
            model_config._attn_implementation = "eager"
            model = self._make_model(model_class, model_config)
            assert model.config._attn_implementation == "eager"
            prepared = self._prepare_for_class(inputs, model_class)
            with torch.no_grad():
                eager = model(**prepared, output_attentions=True)
            model.set_attn_implementation("sdpa")
            assert model.config._attn_implementation == "sdpa"
            with pytest.raises(ValueError, match='Specified `attn_implementation="foo"` is not supported'):
                model.set_attn_implementation("foo")
            assert model.config._attn_implementation == "sdpa"
            # Every attention module reads the switched implementation: sdpa returns no weights.
            with torch.no_grad():
                sdpa = model(**prepared, output_attentions=True)
            assert len(eager.encoder_attentions) == config.encoder_layers and sdpa.encoder_attentions == ()
            torch.testing.assert_close(sdpa[0], eager[0], atol=1e-5, rtol=1e-4)

    # ---- devices and device maps
    def check_device_map_is_respected(self, model, device_map):
        for param_name, param in model.named_parameters():
            name = param_name
            while name and name not in device_map:
                name = ".".join(name.split(".")[:-1])
            assert name in device_map or "" in device_map, f"device map has no device for {param_name}"
            device = device_map[name if name in device_map else ""]
            if device == "disk" or (device == "cpu" and torch_device != "cpu" and len(set(device_map.values())) > 1):
                assert param.device == torch.device("meta"), param_name
            elif device == "cpu":
                assert param.device == torch.device("cpu"), param_name
            else:
                assert param.device == torch.device(f"{torch_device}:{device}"), param_name

    def _reference(self, tmp_path, config, inputs):
        model = self._make_model(UPSForPoseSequenceModeling, config)
        model.save_pretrained(tmp_path)
        prepared = self._prepare_for_class(inputs, UPSForPoseSequenceModeling)
        with torch.no_grad():
            logits = model(**prepared).logits
        tokens = model.generate(**{k: v for k, v in prepared.items() if k != "decoder_input_ids"})
        return model, prepared, logits, tokens

    def _check_same_outputs(self, new_model, prepared, logits, tokens):
        with torch.no_grad():
            new_logits = new_model(**prepared).logits
        torch.testing.assert_close(new_logits.to(logits.device), logits, rtol=1e-5, atol=1e-5)
        new_tokens = new_model.generate(**{k: v for k, v in prepared.items() if k != "decoder_input_ids"})
        assert new_tokens.tolist() == tokens.tolist()

    def test_device_map_cpu_and_auto(self, tmp_path):
        """`from_pretrained(device_map=...)` (accelerate): "cpu" and "auto" give the same outputs and tokens."""
        pytest.importorskip("accelerate")
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model, prepared, logits, tokens = self._reference(tmp_path, config, inputs)
        cpu_inputs = {k: v.cpu() for k, v in prepared.items()}
        # transformers records `hf_device_map` only when the model is split over several devices.
        on_cpu = UPSForPoseSequenceModeling.from_pretrained(tmp_path, device_map="cpu")
        assert getattr(on_cpu, "hf_device_map", {"": "cpu"}) == {"": "cpu"}
        assert {t.device.type for t in list(on_cpu.parameters()) + list(on_cpu.buffers())} == {"cpu"}
        assert (on_cpu.lm_head.weight is on_cpu.get_input_embeddings().weight) == config.tie_word_embeddings
        self._check_same_outputs(on_cpu, cpu_inputs, logits.cpu(), tokens.cpu())
        auto = UPSForPoseSequenceModeling.from_pretrained(tmp_path, device_map="auto")
        single_device = {"": 0 if torch_device != "cpu" else "cpu"}
        self.check_device_map_is_respected(auto, getattr(auto, "hf_device_map", single_device))
        assert (auto.lm_head.weight is auto.get_input_embeddings().weight) == config.tie_word_embeddings
        self._check_same_outputs(auto, prepared, logits, tokens)

    def test_disk_offload_bin(self, tmp_path):
        # transformers loads .bin checkpoints with device_map="auto" + offload; UPS never unpickles .bin files.
        config = self.model_tester.get_config()
        UPSForPoseSequenceModeling(config).save_pretrained(tmp_path)
        with pytest.raises(ValueError, match="safetensors only"):
            UPSForPoseSequenceModeling.from_pretrained(tmp_path, device_map="auto", use_safetensors=False)

    def test_disk_offload_safetensors(self, tmp_path):
        """Part of the model offloaded to disk (max_memory below the model's size): the same outputs and tokens."""
        pytest.importorskip("accelerate")
        from transformers.integrations.accelerate import compute_module_sizes

        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model, prepared, logits, tokens = self._reference(tmp_path, config, inputs)
        model_size = compute_module_sizes(model)[0][""]
        max_size = int(self.model_split_percents[1] * model_size)
        main = 0 if torch_device != "cpu" else "cpu"
        new_model = UPSForPoseSequenceModeling.from_pretrained(
            tmp_path, device_map="auto", max_memory={main: max_size, "cpu": max_size} if main != "cpu"
            else {"cpu": max_size}, offload_folder=str(tmp_path / "offload"),
        )
        assert "disk" in set(new_model.hf_device_map.values())
        self.check_device_map_is_respected(new_model, new_model.hf_device_map)
        self._check_same_outputs(new_model, prepared, logits, tokens)

    @requires_accelerator
    def test_cpu_offload(self, tmp_path):
        from transformers.integrations.accelerate import compute_module_sizes

        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model, prepared, logits, tokens = self._reference(tmp_path, config, inputs)
        model_size = compute_module_sizes(model)[0][""]
        for max_size in [int(p * model_size) for p in self.model_split_percents[1:]]:
            new_model = UPSForPoseSequenceModeling.from_pretrained(
                tmp_path, device_map="auto", max_memory={0: max_size, "cpu": model_size * 2})
            assert set(new_model.hf_device_map.values()) == {0, "cpu"}
            self.check_device_map_is_respected(new_model, new_model.hf_device_map)
            self._check_same_outputs(new_model, prepared, logits, tokens)

    def test_can_load_with_device_context_manager(self, tmp_path):
        config = self.model_tester.get_config()
        device = torch.device(torch_device, index=0) if torch_device != "cpu" else torch.device("cpu")
        for model_class in self.all_model_classes:
            model_class(copy.deepcopy(config)).save_pretrained(tmp_path)
            with device:
                new_model = model_class.from_pretrained(tmp_path)
            devices = {p.device for p in new_model.parameters()} | {b.device for b in new_model.buffers()}
            assert devices == {device}

    def test_cannot_load_with_meta_device_context_manager(self, tmp_path):
        config = self.model_tester.get_config()
        for model_class in self.all_model_classes:
            model_class(copy.deepcopy(config)).save_pretrained(tmp_path)
            with torch.device("meta"):
                with pytest.raises(RuntimeError, match="meta device context manager"):
                    model_class.from_pretrained(tmp_path)


# ====================================================================================================================
# GenerationTesterMixin (transformers/tests/generation/test_utils.py)
# ====================================================================================================================


class GenerationTesterMixin:
    """Generation tests. UPS rows have fixed, task-constrained lengths: a label row is `[<s>, label, EOT]`, then
    `<pad>`; the generated length of a batch is that of its longest row (capped by max_new_tokens). So where
    transformers sets `eos_token_id=None` to force max_new_tokens on every row, these tests check each row's
    tokens are the ones its task allows at each step (`_check_tokens_allowed`)."""

    max_new_tokens = 3

    def prepare_config_and_inputs_for_generate(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        inputs = {k: v for k, v in inputs.items() if k not in ("decoder_input_ids", "decoder_attention_mask",
                                                                 "use_cache", "labels")}
        return config, _to_device(inputs)

    def _get_logits_processor_kwargs(self, do_sample=False):
        kwargs = {"bad_words_ids": [[1, 0]], "repetition_penalty": 1.2, "remove_invalid_values": True}
        if do_sample:
            kwargs.update({"top_k": 10, "top_p": 0.7, "temperature": 0.7})
        return kwargs

    @staticmethod
    def _get_beam_kwargs(num_return_sequences=1):
        return {"early_stopping": False, "length_penalty": 2.0, "num_beams": 2,
                "num_return_sequences": num_return_sequences}

    def _generate(self, model, inputs, do_sample, seed=0, **kwargs):
        if do_sample:
            torch.manual_seed(seed)
        return model.generate(do_sample=do_sample, max_new_tokens=self.max_new_tokens,
                              **self._get_logits_processor_kwargs(do_sample), **kwargs, **inputs)

    def _greedy_generate(self, model, inputs, **kwargs):
        return self._generate(model, inputs, do_sample=False, num_beams=1, **kwargs)

    def _sample_generate(self, model, inputs, num_return_sequences, **kwargs):
        return self._generate(model, inputs, do_sample=True, num_beams=1, num_return_sequences=num_return_sequences,
                              **kwargs)

    def _beam_search_generate(self, model, inputs, beam_kwargs, **kwargs):
        return self._generate(model, inputs, do_sample=False, **beam_kwargs, **kwargs)

    def _beam_sample_generate(self, model, inputs, beam_kwargs, **kwargs):
        return self._generate(model, inputs, do_sample=True, **beam_kwargs, **kwargs)

    def _generative_model(self, config, attn_implementation="eager"):
        return self._make_model(UPSForPoseSequenceModeling, config, attn_implementation=attn_implementation)

    # ---- output checks
    def _check_tokens_allowed(self, config, sequences, inputs, num_return_sequences=1, max_new_tokens=None):
        """Each row: `<s>`, then at step i a token its task and layout allow (label / x, y, z bins / EOT), then
        only `<pad>` after its EOT; a row stops early only at its EOT."""
        sequences = sequences.cpu()
        constraint = UPSTaskConstrainedLogitsProcessor(config, inputs["task_ids"].cpu(), inputs["layout_ids"].cpu())
        rows = sequences.shape[0]
        assert rows == inputs["task_ids"].shape[0] * num_return_sequences
        assert (sequences[:, 0] == config.decoder_start_token_id).all()
        eot = constraint.eot.repeat_interleave(num_return_sequences)
        length = constraint.length.repeat_interleave(num_return_sequences)
        generated = sequences.shape[1] - 1
        expected = int(length.max()) + 1 if max_new_tokens is None else min(max_new_tokens, int(length.max()) + 1)
        assert generated == expected, (generated, expected)
        for step in range(generated):
            low, high = constraint.allowed_range(step, rows, "cpu")
            token = sequences[:, step + 1]
            finished = (sequences[:, 1 : step + 1] == eot[:, None]).any(1)
            assert (token[finished] == config.pad_token_id).all(), step
            ok = (token >= low) & (token < high)
            assert ok[~finished].all(), (step, token.tolist(), low.tolist(), high.tolist())

    def _check_generate_outputs(self, output, config, inputs, use_cache=False, num_return_sequences=1, num_beams=1):
        input_batch_size = inputs["pose_values"].shape[0]
        internal_batch_size = input_batch_size * (num_beams if num_beams > 1 else num_return_sequences)
        # encoder-decoder: the decoder prompt is the start token alone
        generated_length = output.sequences.shape[1] - 1
        vocab_size = config.vocab_size

        # scores (processed: -inf outside what the task allows) and raw logits, one per step
        assert isinstance(output.scores, tuple) and len(output.scores) == generated_length
        assert [tuple(s.shape) for s in output.scores] == [(internal_batch_size, vocab_size)] * generated_length
        assert isinstance(output.logits, tuple) and len(output.logits) == generated_length
        assert [tuple(s.shape) for s in output.logits] == [(internal_batch_size, vocab_size)] * generated_length
        assert all(torch.isfinite(s).all() for s in output.logits)

        # encoder attentions and hidden states: once, for the input batch (not expanded by beams / sequences)
        self._check_encoder_attentions(output.encoder_attentions, config, inputs)
        hidden = output.encoder_hidden_states
        assert isinstance(hidden, tuple) and len(hidden) == config.encoder_layers + 1
        expected = (input_batch_size, self.model_tester.memory_length(config, inputs),
                    self.model_tester.encoder_token_width(config))
        assert [tuple(h.shape) for h in hidden] == [expected] * len(hidden)

        # decoder attentions, cross-attentions and hidden states: one tuple per step; with the cache, steps after
        # the first feed one token
        memory_length = self.model_tester.memory_length(config, inputs)
        heads = config.num_attention_heads
        for name in ("decoder_attentions", "cross_attentions", "decoder_hidden_states"):
            per_step = output[name]
            assert isinstance(per_step, tuple) and len(per_step) == generated_length, name
            assert all(isinstance(step, tuple) for step in per_step), name
        for step in range(generated_length):
            query = 1 if use_cache and step > 0 else 1 + step
            key = 1 + step
            assert [tuple(a.shape) for a in output.decoder_attentions[step]] == \
                [(internal_batch_size, heads, query, key)] * config.num_hidden_layers
            assert [tuple(a.shape) for a in output.cross_attentions[step]] == \
                [(internal_batch_size, heads, query, memory_length)] * config.num_hidden_layers
            assert [tuple(h.shape) for h in output.decoder_hidden_states[step]] == \
                [(internal_batch_size, query, config.hidden_size)] * (config.num_hidden_layers + 1)

        cache = getattr(output, CACHE_FIELD, None)
        if use_cache:
            self._check_cache(cache, config, internal_batch_size, generated_length, memory_length)
        else:
            assert cache is None

    def _check_cache(self, cache, config, batch_size, length, memory_length, seq_length=None):
        """EncoderDecoderCache: self-attention keys/values of every decoded position, cross-attention keys/values
        of the memory, (batch, heads, length, head_dim), one layer per decoder layer. `seq_length`: positions
        filled, when the cache is allocated longer (static)."""
        assert isinstance(cache, EncoderDecoderCache) and isinstance(cache, Cache)
        head_dim = config.hidden_size // config.num_attention_heads
        subs = ((cache.self_attention_cache, length), (cache.cross_attention_cache, memory_length))
        for sub, expected_length in subs:
            assert len(sub.layers) == config.num_hidden_layers
            for layer in sub.layers:
                expected = (batch_size, config.num_attention_heads, expected_length, head_dim)
                assert tuple(layer.keys.shape) == expected and tuple(layer.values.shape) == expected
        assert cache.get_seq_length() == (length if seq_length is None else seq_length)

    # ---- greedy
    def test_greedy_generate(self):
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        output = self._greedy_generate(model, inputs)
        assert output.shape[-1] == self.max_new_tokens + 1
        self._check_tokens_allowed(config, output, inputs, max_new_tokens=self.max_new_tokens)

    def test_greedy_generate_dict_outputs(self):
        config, inputs = self.prepare_config_and_inputs_for_generate()
        config.use_cache = False
        model = self._generative_model(config)
        output = self._greedy_generate(model, inputs, output_scores=True, output_logits=True,
                                       output_hidden_states=True, output_attentions=True,
                                       return_dict_in_generate=True, use_cache=False)
        assert output.sequences.shape[-1] == self.max_new_tokens + 1
        assert isinstance(output, GenerateEncoderDecoderOutput)
        self._check_tokens_allowed(config, output.sequences, inputs, max_new_tokens=self.max_new_tokens)
        self._check_generate_outputs(output, config, inputs, use_cache=False)
        # The scores are the argmax the tokens took (greedy), for rows still running.
        for step, scores in enumerate(output.scores):
            token = output.sequences[:, step + 1]
            running = torch.isfinite(scores).any(-1) & (token != config.pad_token_id)
            assert torch.equal(scores.argmax(-1)[running], token[running])

    def test_greedy_generate_dict_outputs_use_cache(self):
        config, inputs = self.prepare_config_and_inputs_for_generate()
        config.use_cache = True
        model = self._generative_model(config)
        output = self._greedy_generate(model, inputs, output_scores=True, output_logits=True,
                                       output_hidden_states=True, output_attentions=True,
                                       return_dict_in_generate=True, use_cache=True)
        assert output.sequences.shape[-1] == self.max_new_tokens + 1
        self._check_generate_outputs(output, config, inputs, use_cache=True)

    # ---- sampling
    def test_sample_generate(self):
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        output = self._sample_generate(model, inputs, num_return_sequences=1)
        assert output.shape[-1] == self.max_new_tokens + 1
        self._check_tokens_allowed(config, output, inputs, max_new_tokens=self.max_new_tokens)
        # Seeded sampling is reproducible.
        assert torch.equal(output, self._sample_generate(model, inputs, num_return_sequences=1))

    def test_sample_generate_dict_output(self):
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        output = self._sample_generate(model, inputs, num_return_sequences=2, output_scores=True,
                                       output_logits=True, output_hidden_states=True, output_attentions=True,
                                       return_dict_in_generate=True, use_cache=False)
        assert output.sequences.shape[-1] == self.max_new_tokens + 1
        assert isinstance(output, GenerateEncoderDecoderOutput)
        self._check_tokens_allowed(config, output.sequences, inputs, 2, max_new_tokens=self.max_new_tokens)
        self._check_generate_outputs(output, config, inputs, num_return_sequences=2)

    def test_sample_generate_full_length_is_well_formed(self):
        """Sampling to each row's full length (no max_new_tokens): every row is a complete, well-formed output."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        torch.manual_seed(0)
        output = model.generate(**inputs, do_sample=True, top_k=10, temperature=1.5, num_return_sequences=2)
        self._check_tokens_allowed(config, output, inputs, 2)
        check_well_formed(config, output.cpu(), {k: v.repeat_interleave(2, 0).cpu() for k, v in inputs.items()})

    # ---- beam search
    def test_beam_search_generate(self):
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        output = self._beam_search_generate(model, inputs, self._get_beam_kwargs())
        assert output.shape[-1] == self.max_new_tokens + 1
        self._check_tokens_allowed(config, output, inputs, max_new_tokens=self.max_new_tokens)

    def test_beam_search_generate_dict_output(self):
        config, inputs = self.prepare_config_and_inputs_for_generate()
        config.use_cache = False
        model = self._generative_model(config)
        beam_kwargs = self._get_beam_kwargs(num_return_sequences=2)
        output = self._beam_search_generate(model, inputs, beam_kwargs, output_scores=True, output_logits=True,
                                            output_hidden_states=True, output_attentions=True,
                                            return_dict_in_generate=True, use_cache=False)
        assert output.sequences.shape[-1] == self.max_new_tokens + 1
        assert isinstance(output, GenerateBeamEncoderDecoderOutput)
        self._check_tokens_allowed(config, output.sequences, inputs, 2, max_new_tokens=self.max_new_tokens)
        self._check_generate_outputs(output, config, inputs, num_return_sequences=2, num_beams=2)
        assert output.sequences_scores.shape == (inputs["pose_values"].shape[0] * 2,)

    def test_beam_search_generate_dict_outputs_use_cache(self):
        config, inputs = self.prepare_config_and_inputs_for_generate()
        config.use_cache = True
        model = self._generative_model(config)
        beam_kwargs = self._get_beam_kwargs()
        output = self._beam_search_generate(model, inputs, beam_kwargs, output_scores=True, output_logits=True,
                                            output_hidden_states=True, output_attentions=True,
                                            return_dict_in_generate=True, use_cache=True)
        assert output.sequences.shape[-1] == self.max_new_tokens + 1
        self._check_generate_outputs(output, config, inputs, use_cache=True, num_beams=beam_kwargs["num_beams"])

    def test_beam_sample_generate(self):
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        output = self._beam_sample_generate(model, inputs, self._get_beam_kwargs())
        assert output.shape[-1] == self.max_new_tokens + 1
        self._check_tokens_allowed(config, output, inputs, max_new_tokens=self.max_new_tokens)

    def test_beam_sample_generate_dict_output(self):
        config, inputs = self.prepare_config_and_inputs_for_generate()
        config.use_cache = False
        model = self._generative_model(config)
        beam_kwargs = self._get_beam_kwargs()
        output = self._beam_sample_generate(model, inputs, beam_kwargs, output_scores=True, output_logits=True,
                                            output_hidden_states=True, output_attentions=True,
                                            return_dict_in_generate=True, use_cache=False)
        assert output.sequences.shape[-1] == self.max_new_tokens + 1
        assert isinstance(output, GenerateBeamEncoderDecoderOutput)
        self._check_generate_outputs(output, config, inputs, num_beams=beam_kwargs["num_beams"])

    def test_num_return_sequences_with_beams(self):
        """Full-length beam search returning 2 sequences per sample: all well formed, the first is the greedy-like
        best beam of its sample, and rows are grouped per sample."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        output = model.generate(**inputs, num_beams=3, num_return_sequences=2, return_dict_in_generate=True,
                                output_scores=True)
        self._check_tokens_allowed(config, output.sequences, inputs, 2)
        scores = output.sequences_scores.view(-1, 2)
        assert (scores[:, 0] >= scores[:, 1] - 1e-6).all()

    # ---- caches
    def test_generate_cache_equivalence(self):
        """use_cache=True and False give identical tokens and (within float rounding) identical scores, for greedy,
        sampling and beam search; full length (every task's whole output)."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config, attn_implementation="sdpa")
        for options in ({"num_beams": 1}, {"do_sample": True, "top_k": 5}, {"num_beams": 2},
                        {"num_beams": 2, "do_sample": True}):
            outputs = []
            for use_cache in (True, False):
                torch.manual_seed(0)
                outputs.append(model.generate(**inputs, use_cache=use_cache, return_dict_in_generate=True,
                                              output_scores=True, **options))
            cached, uncached = outputs
            assert cached.sequences.tolist() == uncached.sequences.tolist(), options
            assert len(cached.scores) == len(uncached.scores) == cached.sequences.shape[1] - 1
            for a, b in zip(cached.scores, uncached.scores):
                finite = torch.isfinite(a)
                assert torch.equal(finite, torch.isfinite(b))
                torch.testing.assert_close(a[finite], b[finite], atol=1e-5, rtol=1e-5)
            if "num_beams" in options and options["num_beams"] > 1:
                torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, atol=1e-5, rtol=1e-5)
            self._check_tokens_allowed(config, cached.sequences, inputs)

    def test_past_key_values_format(self):
        """The decoder cache of a forward pass: an EncoderDecoderCache with one layer per decoder layer, self-attention
        (batch, heads, decoder length, head_dim) and cross-attention (batch, heads, memory length, head_dim)."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model = self._generative_model(config, attn_implementation="sdpa")
        prepared = _to_device(inputs)
        with torch.no_grad():
            out = model(**prepared, use_cache=True)
        cache = getattr(out, CACHE_FIELD)
        self._check_cache(cache, config, self.model_tester.batch_size, inputs["decoder_input_ids"].shape[1],
                          self.model_tester.memory_length(config, inputs))
        # The cache continues: one more token with it equals the full sequence without it.
        next_ids = torch.full((self.model_tester.batch_size, 1), config.label_token_offset, device=torch_device)
        full_ids = torch.cat([prepared["decoder_input_ids"], next_ids], 1)
        with torch.no_grad():
            step = model(**dict(prepared, decoder_input_ids=next_ids), **{CACHE_FIELD: cache})
            full = model(**dict(prepared, decoder_input_ids=full_ids), use_cache=False)
        torch.testing.assert_close(step.logits[:, -1], full.logits[:, -1], atol=1e-5, rtol=1e-4)
        # ... also under the other name of the argument (`past_key_values` before transformers 5.24, `cache` since).
        with torch.no_grad():
            out = model(**prepared, use_cache=True)
            other = "past_key_values" if CACHE_FIELD == "cache" else "cache"
            step = model(**dict(prepared, decoder_input_ids=next_ids), **{other: getattr(out, CACHE_FIELD)})
        torch.testing.assert_close(step.logits[:, -1], full.logits[:, -1], atol=1e-5, rtol=1e-4)

    def test_generate_continue_from_past_key_values(self):
        """Generating 3 tokens, then 1 more from the returned cache, equals generating 4 in a row."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config, attn_implementation="sdpa")
        model.generation_config.use_cache = True
        outputs = model.generate(**inputs, do_sample=False, max_new_tokens=4, return_dict_in_generate=True,
                                 output_scores=True)
        outputs_cached = model.generate(**inputs, do_sample=False, max_new_tokens=3, return_dict_in_generate=True,
                                        output_scores=True)
        # As in transformers' test, the decoder mask spans the whole sequence: generate() then feeds only the
        # positions the cache does not hold yet (without a mask it feeds them all again, for any encoder-decoder).
        sequences = outputs_cached.sequences
        continued_inputs = dict(inputs, decoder_input_ids=sequences, decoder_attention_mask=torch.ones_like(sequences))
        continued_inputs[CACHE_FIELD] = getattr(outputs_cached, CACHE_FIELD)
        first_scores = outputs_cached.scores
        outputs_cached = model.generate(**continued_inputs, do_sample=False, max_new_tokens=1,
                                        return_dict_in_generate=True, output_scores=True)
        assert outputs.sequences.tolist() == outputs_cached.sequences.tolist()
        for a, b in zip(outputs.scores, first_scores + outputs_cached.scores):
            finite = torch.isfinite(a)
            torch.testing.assert_close(a[finite], b[finite], atol=1e-5, rtol=1e-5)
        full_cache, continued_cache = getattr(outputs, CACHE_FIELD), getattr(outputs_cached, CACHE_FIELD)
        for sub in ("self_attention_cache", "cross_attention_cache"):
            for a, b in zip(getattr(full_cache, sub).layers, getattr(continued_cache, sub).layers):
                torch.testing.assert_close(a.keys, b.keys, atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(a.values, b.values, atol=1e-5, rtol=1e-5)

    def test_generate_with_static_cache(self):
        """Generating with a static cache gives (almost) the results of the dynamic cache, and the cache has the
        expected shapes: decoder self-attention sized for the prompt and the new tokens, cross-attention for the
        memory."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        max_new_tokens = 4
        for dtype in (torch.float32, torch.float16):
            model = self._generative_model(config, attn_implementation="sdpa").to(dtype)
            kwargs = {"max_new_tokens": max_new_tokens, "return_dict_in_generate": True, "output_scores": True,
                      "use_cache": True}
            static = model.generate(**inputs, cache_implementation="static", **kwargs)
            cache = getattr(static, CACHE_FIELD)
            assert isinstance(cache, EncoderDecoderCache) and isinstance(cache.self_attention_cache, StaticCache)
            max_cache_len = 1 + max_new_tokens - 1  # the start token and every generated token but the last
            self._check_cache(cache, config, self.model_tester.batch_size, max_cache_len,
                              self.model_tester.memory_length(config, inputs), seq_length=max_new_tokens)
            dynamic = model.generate(**inputs, **kwargs)
            assert static.sequences.tolist() == dynamic.sequences.tolist()
            for a, b in zip(static.scores, dynamic.scores):
                finite = torch.isfinite(a)
                torch.testing.assert_close(a[finite], b[finite], atol=1e-3 if dtype == torch.float16 else 1e-5,
                                           rtol=1e-3 if dtype == torch.float16 else 1e-5)

    def test_generate_compile_model_forward_fullgraph(self):
        """UPS does not declare _can_compile_fullgraph (transformers skips these tests then)."""
        assert not UPSForPoseSequenceModeling._can_compile_fullgraph

    # ---- inputs
    def test_generate_without_input_ids(self):
        # transformers generates from the decoder start (or BOS) alone; UPS has nothing to condition on without a
        # skeleton sequence and says so.
        config, _ = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        with pytest.raises(ValueError, match="pose_values"):
            model.generate(max_new_tokens=3)

    def test_generate_from_encoder_outputs(self):
        """generate(encoder_outputs=...) (as UPSEncoderOutput or its to_tuple()) equals generate(pose_values=...),
        for greedy and beam search, and returns the given encoder states."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        with torch.no_grad():
            encoder_outputs = model.get_encoder()(**inputs, output_attentions=True, output_hidden_states=True)
        assert isinstance(encoder_outputs, UPSEncoderOutput)
        batch_size = encoder_outputs.last_hidden_state.shape[0]
        for options in ({}, {"num_beams": 2}, {"do_sample": True, "num_return_sequences": 2}):
            torch.manual_seed(0)
            expected = model.generate(**inputs, **options)
            torch.manual_seed(0)
            from_outputs = model.generate(encoder_outputs=encoder_outputs, **options)
            # generate() expands the encoder outputs for beams and sequences; the caller's object stays as it was.
            assert all(v.shape[0] == batch_size for v in encoder_outputs.values() if torch.is_tensor(v))
            torch.manual_seed(0)
            from_tuple = model.generate(encoder_outputs=encoder_outputs.to_tuple(), **options)
            assert from_outputs.tolist() == expected.tolist() == from_tuple.tolist()
        out = model.generate(encoder_outputs=encoder_outputs, return_dict_in_generate=True, output_attentions=True,
                             output_hidden_states=True, output_scores=True)
        assert out.encoder_attentions is encoder_outputs.attentions
        assert out.encoder_hidden_states is encoder_outputs.hidden_states

    def test_generate_passes_output_options_to_encoder(self):
        """generate(output_attentions/hidden_states=True) returns the encoder's too, also when set in the
        generation config (in-tree encoder-decoders do)."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        gen_config = GenerationConfig.from_model_config(model.config)
        gen_config.output_attentions = True
        gen_config.output_hidden_states = True
        gen_config.return_dict_in_generate = True
        out = model.generate(**inputs, generation_config=gen_config, max_new_tokens=2)
        self._check_encoder_attentions(out.encoder_attentions, config, inputs)
        assert len(out.encoder_hidden_states) == config.encoder_layers + 1

    def test_generate_methods_with_logits_to_keep(self):
        """UPS's forward has no logits_to_keep (generation decodes a few tokens per output)."""
        assert "logits_to_keep" not in inspect.signature(UPSForPoseSequenceModeling.forward).parameters

    def test_inherits_generation_mixin(self):
        for model_class in self.all_generative_model_classes:
            assert issubclass(model_class, GenerationMixin)

    def test_prepare_inputs_for_generation_kwargs_forwards(self):
        """prepare_inputs_for_generation names the decoder ids and forwards every other kwarg (UPS's task and layout
        ids reach the forward pass this way)."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        with torch.no_grad():
            encoder_outputs = model.get_encoder()(**inputs)
        decoder_ids = torch.ones(self.model_tester.batch_size, 1, dtype=torch.long, device=torch_device)
        arbitrary = {"output_attentions": True, "output_hidden_states": True, "custom_arg": "test_value",
                     "numeric_arg": 42, "task_ids": inputs["task_ids"], "layout_ids": inputs["layout_ids"]}
        extra = {}
        if "cache_position" in inspect.signature(model.prepare_inputs_for_generation).parameters:
            extra["cache_position"] = torch.arange(1, device=torch_device)
        model_inputs = model.prepare_inputs_for_generation(decoder_ids, encoder_outputs=encoder_outputs, **arbitrary,
                                                           **extra)
        assert torch.equal(model_inputs["decoder_input_ids"], decoder_ids)
        assert model_inputs["encoder_outputs"] is encoder_outputs
        for key, value in arbitrary.items():
            assert key in model_inputs and (model_inputs[key] is value or model_inputs[key] == value), key
        forward_params = inspect.signature(model.forward).parameters
        with torch.no_grad():
            out = model(**{k: v for k, v in model_inputs.items() if k in forward_params})
        assert out.logits.shape == (self.model_tester.batch_size, 1, config.vocab_size)

    # ---- what UPS refuses
    def test_generate_eos_token_id_none(self):
        """transformers' generation tests pass `eos_token_id=None` to run to max_new_tokens: UPS rows then keep
        their fixed form (a row's EOT, then <pad>) instead of failing."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        expected = model.generate(**inputs, max_new_tokens=5)
        for options in ({}, {"num_beams": 2}):
            out = model.generate(**inputs, max_new_tokens=5, eos_token_id=None, **options)
            self._check_tokens_allowed(config, out, inputs, max_new_tokens=5)
            if not options:
                assert out.tolist() == expected.tolist()
        label_only = {k: v[:2] for k, v in inputs.items()}  # the fast path of label-only batches
        out = model.generate(**label_only, eos_token_id=None)
        assert out.tolist() == model.generate(**label_only).tolist()

    def test_min_new_tokens_beyond_fixed_length_is_refused(self):
        """min_new_tokens / min_length above the shortest row's fixed length would force tokens after its EOT:
        refused, with or without sampling, from kwargs or the generation config; up to that length it is allowed."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        reference = model.generate(**inputs)
        # generate() bans the EOS until min_new_tokens tokens precede it; min_length counts the start token too.
        shortest = 1  # a label row: one label token before its EOT
        for options in ({"min_new_tokens": shortest + 1}, {"min_length": shortest + 2},
                        {"min_new_tokens": shortest + 1, "do_sample": True}, {"min_new_tokens": 50, "num_beams": 2}):
            with pytest.raises(ValueError, match="fixed length"):
                model.generate(**inputs, **options)
        with pytest.raises(ValueError, match="fixed length"):
            model.generate(**inputs, generation_config=GenerationConfig(min_new_tokens=shortest + 1))
        for options in ({"min_new_tokens": shortest}, {"min_length": shortest + 1}):
            assert model.generate(**inputs, **options).tolist() == reference.tolist()
        # A batch of pose rows only may ask for its whole length.
        pose = {k: v[2:3] for k, v in inputs.items()}
        length = 3 * config.layouts[int(pose["layout_ids"][0])]["num_joints"]
        assert model.generate(**pose, min_new_tokens=length).tolist() == model.generate(**pose).tolist()
        with pytest.raises(ValueError, match="fixed length"):
            model.generate(**pose, min_new_tokens=length + 1)

    @pytest.mark.parametrize("option", [
        {"assistant_model": "self"}, {"prompt_lookup_num_tokens": 2}, {"assistant_early_exit": 1},
    ])
    def test_assisted_decoding_is_refused(self, option):
        """transformers' test_assisted_decoding_matches_greedy_search, test_prompt_lookup_decoding_matches_greedy_search
        and test_assisted_decoding_sample: UPS refuses assisted decoding with a clear message, from kwargs or the
        generation config, before running anything."""
        config, inputs = self.prepare_config_and_inputs_for_generate()
        model = self._generative_model(config)
        option = {k: (model if v == "self" else v) for k, v in option.items()}
        with mock.patch.object(type(model.get_encoder()), "forward", side_effect=AssertionError("encoder ran")):
            with pytest.raises(ValueError, match="does not support assisted decoding"):
                model.generate(**inputs, **option)
            if "assistant_model" not in option:
                with pytest.raises(ValueError, match="does not support assisted decoding"):
                    model.generate(**inputs, generation_config=GenerationConfig(**option))


# ====================================================================================================================
# The suites
# ====================================================================================================================


@pytest.mark.parametrize("name", sorted(NOT_APPLICABLE))
def test_not_applicable_to_ups(name):
    """transformers' common tests that UPS does not run, each reported as a skip with its reason."""
    pytest.skip(NOT_APPLICABLE[name])


def test_not_applicable_tests_are_not_defined():
    """A test listed as not applicable is not also implemented (it would run under one name and skip under the
    other); every entry names a test and gives a reason."""
    defined = {name for cls in (ModelTesterMixin, GenerationTesterMixin) for name in vars(cls)}
    assert not defined & NOT_APPLICABLE.keys()
    assert all(name.startswith("test_") and reason for name, reason in NOT_APPLICABLE.items())


class TestUPSModel(ModelTesterMixin, GenerationTesterMixin):
    """The tiny config of test_modeling (task-specific batch norm, tied vocabulary head, 2 blocks per layer)."""

    all_model_classes = (UPSModel, UPSForPoseSequenceModeling)
    model_tester = UPSModelTester()


class TestUPSModelVariant(ModelTesterMixin, GenerationTesterMixin):
    """Other choices of the config: an untied output head, one block per layer (no routing choice), no root-relative
    input copy."""

    all_model_classes = (UPSModel, UPSForPoseSequenceModeling)
    model_tester = UPSModelTester(tie_word_embeddings=False, encoder_blocks_per_layer=1,
                                  root_relative_input=False)
    run_config_independent_tests = False
