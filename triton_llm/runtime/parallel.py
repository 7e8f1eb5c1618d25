"""Tensor-parallel communication for the CPU runtime.

:class:`TensorParallelComm` is what the model and the generator need: an in-place sum
all-reduce (after the row-parallel ``attention.dense`` and ``mlp.proj``), an all-gather of
vocab-parallel logits, and a broadcast of a Python object from rank 0 (each step's work).
:class:`LocalComm` is the single-process case; :class:`MpiComm` runs over mpi4py's
``COMM_WORLD`` (start the ranks with ``mpirun``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class TensorParallelComm(Protocol):
    """Collectives over the tensor-parallel group; every rank must call them in the same order."""

    @property
    def rank(self) -> int: ...

    @property
    def size(self) -> int: ...

    def allreduce_(self, tensor: Any) -> None:
        """Sum a contiguous float32 torch tensor over ranks, in place."""
        ...

    def allgather(self, tensor: Any) -> Any:
        """Concatenate each rank's contiguous float32 tensor along the last dim (rank order)."""
        ...

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (the argument is ignored on other ranks)."""
        ...


class LocalComm:
    """One process, no communication."""

    rank = 0
    size = 1

    def allreduce_(self, tensor: Any) -> None:
        """Nothing to reduce."""

    def allgather(self, tensor: Any) -> Any:
        """The tensor itself."""
        return tensor

    def broadcast(self, obj: Any) -> Any:
        """The object itself."""
        return obj


class MpiComm:
    """Collectives over ``mpi4py.MPI.COMM_WORLD`` (or a given communicator)."""

    def __init__(self, comm: Any = None) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self._comm = comm if comm is not None else MPI.COMM_WORLD

    @property
    def rank(self) -> int:
        return int(self._comm.Get_rank())

    @property
    def size(self) -> int:
        return int(self._comm.Get_size())

    def allreduce_(self, tensor: Any) -> None:
        """In-place ``Allreduce`` on the numpy view of the tensor (must be contiguous float32).

        Raises:
            ValueError: the tensor is not contiguous float32.
        """
        import torch

        if tensor.dtype != torch.float32 or not tensor.is_contiguous():
            raise ValueError("allreduce_ needs a contiguous float32 tensor")
        self._comm.Allreduce(self._mpi.IN_PLACE, tensor.numpy(), op=self._mpi.SUM)

    def allgather(self, tensor: Any) -> Any:
        """``Allgather`` into ``[size, *shape]`` then concatenate along the last dim."""
        import torch

        src = tensor.contiguous()
        out = torch.empty((self.size, *src.shape), dtype=src.dtype)
        self._comm.Allgather(src.numpy(), out.numpy())
        return torch.cat(list(out.unbind(0)), dim=-1)

    def broadcast(self, obj: Any) -> Any:
        """Pickle-based ``bcast`` from rank 0."""
        return self._comm.bcast(obj, root=0)

    def barrier(self) -> None:
        """Wait until every rank of the group gets here."""
        self._comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every rank of the group (one rank failing must never leave the others hanging)."""
        self._comm.Abort(code)
