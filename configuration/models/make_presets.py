"""Regenerate the model-size presets: ``python configuration/models/make_presets.py``.

Each preset folder holds one ``config.json`` loadable with ``UPSConfig.from_pretrained(folder)``. The vocabulary
size (``num_label_tokens``, ``num_bins``) and the frame budget are placeholders that ``examples/train.py`` overrides
from the processor it trains with (see README.md).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from modeling_ups import UPSConfig  # noqa: E402

PRESETS = {
    # The paper's structure: 3 TCN-GCN tokenizer layers, 3 encoder layers x 2 SEM-TEM blocks, 3 decoder layers,
    # routing embeddings of 256, 256 bins per axis, 300-frame budget, 768-d text features (RoBERTa-base).
    "ups-base": dict(
        num_label_tokens=60,
        num_bins=256,
        max_frames=300,
        tokenizer_channels=[64, 64, 64],
        tokenizer_temporal_strides=[1, 2, 2],
        encoder_layers=3,
        encoder_blocks_per_layer=2,
        encoder_attention_heads=8,
        encoder_attention_dim=256,
        encoder_ffn_dim=512,
        routing_embedding_dim=256,
        d_model=256,
        decoder_layers=3,
        decoder_attention_heads=8,
        decoder_ffn_dim=1024,
        text_embedding_dim=768,
        text_encoder_name_or_path="FacebookAI/roberta-base",
        bin_smoothing_sigma=2.0,
    ),
    # Same structure, narrow: trains in minutes on 2 CPU cores. Text features from MiniLM (384-d).
    "ups-tiny": dict(
        num_label_tokens=60,
        num_bins=64,
        max_frames=64,
        tokenizer_channels=[16, 16, 24],
        tokenizer_temporal_strides=[1, 2, 2],
        encoder_layers=3,
        encoder_blocks_per_layer=2,
        encoder_attention_heads=4,
        encoder_attention_dim=64,
        encoder_ffn_dim=128,
        routing_embedding_dim=32,
        d_model=64,
        decoder_layers=3,
        decoder_attention_heads=4,
        decoder_ffn_dim=128,
        text_embedding_dim=384,
        text_encoder_name_or_path="sentence-transformers/all-MiniLM-L6-v2",
        bin_smoothing_sigma=2.0,
        # Measured on the synthetic demo's lifting (docs/design.md); the paper's teacher forcing stays in ups-base.
        decoder_token_dropout=0.5,
    ),
}


def main():
    for name, kwargs in PRESETS.items():
        folder = HERE / name
        UPSConfig(**kwargs).save_pretrained(folder)
        # save_pretrained also copies the config's remote code; a preset is data, the code lives in the package.
        for copied in folder.glob("*.py"):
            copied.unlink()
        print(f"wrote {folder / 'config.json'}")


if __name__ == "__main__":
    main()
