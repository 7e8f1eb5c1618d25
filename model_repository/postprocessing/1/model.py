"""postprocessing: thin shim; the logic is triton_llm.repository.pb_models.PostprocessingModel."""

import triton_python_backend_utils as pb_utils

from triton_llm.repository.pb_models import PostprocessingModel


class TritonPythonModel:
    def initialize(self, args):
        self.impl = PostprocessingModel(args, pb_utils)

    def execute(self, requests):
        return self.impl.execute(requests)

    def finalize(self):
        self.impl.finalize()
