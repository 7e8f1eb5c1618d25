"""tensorrt_llm on CPU: thin shim; the logic is triton_llm.repository.trtllm_cpu.CpuLlmModel.

Only copied into a rendered repository for cpu engines; GPU engines use the tensorrtllm backend.
"""

import triton_python_backend_utils as pb_utils

from triton_llm.repository.trtllm_cpu import CpuLlmModel


class TritonPythonModel:
    def initialize(self, args):
        self.impl = CpuLlmModel(args, pb_utils)

    def execute(self, requests):
        return self.impl.execute(requests)

    def finalize(self):
        self.impl.finalize()
