"""gRPC streaming clients for the ensemble (sync and asyncio)."""
