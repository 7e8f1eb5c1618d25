"""Test model: rank 0 streams N values, each an allreduce over every rank of the group."""

import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils
from mpi4py import MPI


class TritonPythonModel:
    def initialize(self, args):
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.comm.Barrier()  # rank 0 is ready only once every rank has joined
        if self.rank > 0:
            threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self):
        while True:
            n = self.comm.bcast(None, root=0)
            if n is None:
                return
            for i in range(n):
                self.comm.allreduce(self.rank * 1000 + i)

    def execute(self, requests):
        for request in requests:
            n = int(pb_utils.get_input_tensor_by_name(request, "n").as_numpy()[0])
            sender = request.get_response_sender()
            self.comm.bcast(n, root=0)
            for i in range(n):
                total = self.comm.allreduce(i)
                out = pb_utils.Tensor("value", np.array([total], dtype=np.int32))
                sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
                time.sleep(0.05)
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def finalize(self):
        if self.rank == 0 and self.comm.Get_size() > 1:
            self.comm.bcast(None, root=0)
