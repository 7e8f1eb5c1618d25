"""tensorrt_llm_bls: thin shim; the logic is triton_llm.repository.bls.BlsModel."""

import triton_python_backend_utils as pb_utils

from triton_llm.repository.bls import BlsModel


class TritonPythonModel:
    def initialize(self, args):
        self.impl = BlsModel(args, pb_utils)

    def execute(self, requests):
        return self.impl.execute(requests)

    def finalize(self):
        self.impl.finalize()
