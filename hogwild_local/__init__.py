"""hogwild-local: Hogwild! Inference for GGUF models over one shared KV cache."""

__version__ = "0.1.0"
