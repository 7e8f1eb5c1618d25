"""A null decoupled LLM for measuring load generators: its timing is known exactly.

Each request sleeps until ``ttft_ms`` after it arrived, then streams ``max_tokens`` responses
of one token (" tok") at ``ttft_ms + k * itl_ms``, the last one with the final flag; a prompt
of ``!fail`` gets an error response instead. Every
response also carries ``server_times`` = [arrival, send] on CLOCK_MONOTONIC (the clock of
the client's ``time.perf_counter()`` on Linux), so a client can split its TTFT into the
model's own time and everything outside it.
"""

import asyncio
import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"])["parameters"]
        self.ttft = float(params["ttft_ms"]["string_value"]) / 1000
        self.itl = float(params["itl_ms"]["string_value"]) / 1000

    async def execute(self, requests):
        await asyncio.gather(*(self._one(request) for request in requests))
        return None

    async def _one(self, request):
        arrived = time.monotonic()
        sender = request.get_response_sender()
        n = int(pb_utils.get_input_tensor_by_name(request, "max_tokens").as_numpy().reshape(-1)[0])
        text = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
        if text == b"!fail":
            error = pb_utils.TritonError("null model: asked to fail")
            sender.send(
                pb_utils.InferenceResponse(error=error), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
            )
            return
        for k in range(n):
            delay = arrived + self.ttft + k * self.itl - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            outputs = [
                pb_utils.Tensor("text_output", np.array([[b" tok"]], dtype=object)),
                pb_utils.Tensor("num_output_tokens", np.array([[1]], dtype=np.int32)),
                pb_utils.Tensor("server_times", np.array([[arrived, time.monotonic()]], dtype=np.float64)),
            ]
            flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if k == n - 1 else 0
            sender.send(pb_utils.InferenceResponse(output_tensors=outputs), flags=flags)
