"""Helpers no checkpoint needs (the flat model files never import this subpackage)."""

from .text_embeddings import build_vocabulary_embeddings, default_offline_text_encoder

__all__ = ["build_vocabulary_embeddings", "default_offline_text_encoder"]
