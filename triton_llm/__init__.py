"""triton-llm: from a Hugging Face checkpoint to multi-node Triton + TensorRT-LLM serving."""

__version__ = "0.1.0"
