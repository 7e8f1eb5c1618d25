"""Build backends behind one interface: ``trtllm`` (GPU) and ``cpu`` (reference)."""
