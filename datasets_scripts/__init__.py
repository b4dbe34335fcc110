"""Converters of published skeleton datasets into Hugging Face ``datasets``, and the synthetic motion generator."""
