"""Triton model repository: render the inflight_batcher_llm-compatible templates."""
