"""gRPC streaming clients for the ensemble (sync and asyncio).

``LLMClient(url).generate("Hi")`` streams a completion over Triton's gRPC stream and
returns its text and timings; ``stream()`` yields the pieces as they arrive. Leaving the
loop, Ctrl-C, task cancellation or a timeout cancel the request on the server.
"""

from triton_llm.client.aio import AsyncLLMClient
from triton_llm.client.request import Chunk, Completion, GenerateParams
from triton_llm.client.sync import LLMClient

__all__ = ["AsyncLLMClient", "Chunk", "Completion", "GenerateParams", "LLMClient"]
