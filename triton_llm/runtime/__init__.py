"""The CPU reference runtime: serves the cpu backend's TensorRT-LLM checkpoints."""
