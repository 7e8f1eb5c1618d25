"""preprocessing: thin shim; the logic is triton_llm.repository.pb_models.PreprocessingModel."""

import triton_python_backend_utils as pb_utils

from triton_llm.repository.pb_models import PreprocessingModel


class TritonPythonModel:
    def initialize(self, args):
        self.impl = PreprocessingModel(args, pb_utils)

    def execute(self, requests):
        return self.impl.execute(requests)
