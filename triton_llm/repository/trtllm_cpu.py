"""The ``tensorrt_llm`` model on CPU: our runtime behind the python backend.

On GPU the same config renders with ``backend: "tensorrtllm"`` and TensorRT-LLM's C++
backend serves the engine; on CPU it renders with ``backend: "python"`` and this module
serves the cpu backend's checkpoint with :mod:`triton_llm.runtime`, speaking the same
tensors (input_ids, input_lengths, request_output_len, streaming, ... -> output_ids,
sequence_length). Streaming responses carry only the new tokens, as TensorRT-LLM does,
with ``sequence_length`` counting all tokens so far; a stream opens and closes with a
response of no tokens (sequence_length 0, then the total) so postprocessing can
detokenize it exactly (see detokenizer.postprocess_text).
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triton_llm.repository import _pb
from triton_llm.repository.preprocess import RequestError, list_to_words

# Inputs the CPU runtime does not implement, with the value that means "off".
NEUTRAL = {
    "beam_width": 1,
    "len_penalty": 1.0,
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "min_tokens": 0,
    "return_log_probs": False,
    "return_context_logits": False,
    "return_generation_logits": False,
}


def sampling_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """Check the sampling inputs a request sent and map them to SamplingParams fields.

    Raises:
        RequestError: a value out of range, or a feature the CPU runtime does not support.
    """
    for name, neutral in NEUTRAL.items():
        value = values.get(name)
        if value is not None and value != neutral:
            raise RequestError(f"{name}={value} is not supported by the cpu runtime (only {neutral})")
    out: dict[str, Any] = {}
    temperature, top_k, top_p, seed = (values.get(k) for k in ("temperature", "top_k", "top_p", "seed"))
    if temperature is not None:
        if not np.isfinite(temperature) or temperature < 0:
            raise RequestError(f"temperature must be >= 0 (got {temperature})")
        out["temperature"] = float(temperature)
    if top_k is not None:
        if top_k < 0:
            raise RequestError(f"top_k must be >= 0 (got {top_k})")
        out["top_k"] = int(top_k)
    if top_p is not None:
        if not np.isfinite(top_p) or not 0.0 <= top_p <= 1.0:
            raise RequestError(f"top_p must be within [0, 1] (got {top_p})")
        out["top_p"] = float(top_p)
    if seed is not None:
        out["seed"] = int(seed)
    return out


def create_loop(params: dict[str, str]) -> Any:
    """Create the runtime for this rank; the single place where tp > 1 branches.

    Rank 0 gets a GeneratorLoop that serves requests. Ranks above 0 (started by the
    launcher under mpirun) follow rank 0 in ``run_worker`` on a background thread and
    return None: Triton never sends them requests.
    """
    from triton_llm.runtime import Generator, GeneratorLoop, MpiComm

    world_size = int(params.get("world_size") or 1)
    comm = MpiComm() if world_size > 1 else None
    threads = int(params.get("cpu_threads") or 0)
    if threads == 0 and world_size > 1:  # ranks on one host must not oversubscribe its cores
        threads = max(1, (os.cpu_count() or 1) // world_size)
    try:
        generator = Generator(
            Path(params["checkpoint_dir"]),
            max_batch_size=int(params["max_batch_size"]),
            max_input_len=int(params["max_input_len"]),
            max_seq_len=int(params["max_seq_len"]),
            threads=threads,
            comm=comm,
        )
    except BaseException:
        if comm is not None:  # one rank failing must end the whole group, never hang it
            from mpi4py import MPI

            MPI.COMM_WORLD.Abort(1)
        raise
    if comm is not None:
        from mpi4py import MPI

        MPI.COMM_WORLD.Barrier()  # rank 0 turns ready only once every rank has loaded
    if comm is not None and comm.rank > 0:
        from triton_llm.runtime.parallel import run_worker

        threading.Thread(target=run_worker, args=(generator,), daemon=True, name="tp-worker").start()
        return None
    return GeneratorLoop(generator)


@dataclass
class _Stream:
    sender: Any
    streaming: bool
    prefix: list[int]
    tokens: list[int] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    triton_id: str = ""
    final: Any = None  # non-decoupled mode: the one response


class CpuLlmModel:
    """Serves ``tensorrt_llm`` requests from the CPU runtime (decoupled or not)."""

    def __init__(self, args: dict[str, Any], pb: Any, *, loop: Any = None) -> None:
        self.pb = pb
        self.params = _pb.model_parameters(args)
        config = _pb.model_config(args)
        self.decoupled = bool(config.get("model_transaction_policy", {}).get("decoupled", False))
        self.exclude_input = self.params.get("exclude_input_in_output", "true").lower() == "true"
        self.loop = loop if loop is not None else create_loop(self.params)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._by_triton_id: dict[str, str] = {}

    # --- request parsing -------------------------------------------------------------------
    def _request(self, request: Any, request_id: str) -> tuple[Any, bool, list[int]]:
        from triton_llm.runtime import GenerationRequest, SamplingParams

        pb = self.pb
        ids = _pb.get(pb, request, "input_ids")
        if ids is None or ids.size == 0:
            raise RequestError("input_ids is empty")
        input_ids = [int(x) for x in ids.reshape(-1)]
        length = _pb.scalar(pb, request, "input_lengths")
        if length is not None:
            input_ids = input_ids[: int(length)]
        max_new = _pb.scalar(pb, request, "request_output_len")
        if max_new is None or int(max_new) <= 0:
            raise RequestError(f"request_output_len must be at least 1 (got {max_new})")
        values = {name: _pb.scalar(pb, request, name) for name in NEUTRAL}
        for ours, theirs in (("top_k", "runtime_top_k"), ("top_p", "runtime_top_p")):
            values[ours] = _pb.scalar(pb, request, theirs)
        values["temperature"] = _pb.scalar(pb, request, "temperature")
        values["seed"] = _pb.scalar(pb, request, "seed")
        sampling = SamplingParams(**sampling_kwargs(values))
        stop = _pb.get(pb, request, "stop_words_list")
        bad = _pb.get(pb, request, "bad_words_list")
        end_id = _pb.scalar(pb, request, "end_id")
        pad_id = _pb.scalar(pb, request, "pad_id")
        streaming = bool(_pb.scalar(pb, request, "streaming") or False)
        exclude = _pb.scalar(pb, request, "exclude_input_in_output")
        exclude = self.exclude_input if exclude is None else bool(exclude)
        if streaming and not self.decoupled:
            raise RequestError("streaming needs the decoupled model (serving.decoupled=true)")
        gen = GenerationRequest(
            request_id=request_id,
            input_ids=input_ids,
            max_new_tokens=int(max_new),
            end_id=None if end_id is None else int(end_id),
            pad_id=None if pad_id is None else int(pad_id),
            stop_words=list_to_words(stop) if stop is not None else [],
            bad_words=list_to_words(bad) if bad is not None else [],
            sampling=sampling,
        )
        prefix = [] if exclude or streaming else input_ids
        return gen, streaming, prefix

    # --- responses -------------------------------------------------------------------------
    def _tokens_response(self, tokens: list[int], total: int | None = None) -> Any:
        arr = np.asarray(tokens, dtype=np.int32).reshape(1, 1, -1)
        length = arr.shape[-1] if total is None else total
        return self.pb.InferenceResponse(
            output_tensors=[
                self.pb.Tensor("output_ids", arr),
                self.pb.Tensor("sequence_length", np.array([[length]], dtype=np.int32)),
            ]
        )

    def _finish(self, request_id: str, response: Any) -> None:
        stream = self._streams.pop(request_id, None)
        if stream is None:
            return
        if stream.triton_id:
            self._by_triton_id.pop(stream.triton_id, None)
        final = self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        if self.decoupled:
            if response is None:
                stream.sender.send(flags=final)
            else:
                stream.sender.send(response, flags=final)
        else:
            stream.final = response
        stream.done.set()

    def _on_event(self, event: Any) -> None:
        request_id = event.request_id
        stream = self._streams.get(request_id)
        if stream is None:
            return
        if self.decoupled and stream.sender.is_cancelled():
            self.loop.cancel(request_id)
            self._finish(request_id, None)
            self.pb.Logger.log_info(f"tensorrt_llm: request {request_id} cancelled by the client")
            return
        if event.error:
            self._finish(request_id, _pb.error_response(self.pb, str(event.error)))
            return
        new = [int(t) for t in event.new_token_ids]
        stream.tokens.extend(new)
        if stream.streaming:
            try:
                if new:
                    stream.sender.send(self._tokens_response(new, len(stream.tokens)))
                if event.finished:
                    self._finish(request_id, self._tokens_response([], max(len(stream.tokens), 1)))
            except Exception as e:  # the client went away (e.g. a cancelled ensemble request)
                self._streams.pop(request_id, None)
                self.loop.cancel(request_id)
                self.pb.Logger.log_info(
                    f"tensorrt_llm: request {request_id} cancelled by the client ({type(e).__name__}: {e})"
                )
            return
        if event.finished:
            self._finish(request_id, self._tokens_response(stream.prefix + stream.tokens))

    def _stop(self, request: Any) -> _Stream | None:
        """A ``stop`` request: cancel the running request with the same Triton request id.

        This is TensorRT-LLM's explicit cancellation; clients send it after cancelling a
        stream because Triton 2.51's ensemble does not pass cancellation to its steps.
        """
        triton_id = request.request_id() or ""
        runtime_id = self._by_triton_id.pop(triton_id, None) if triton_id else None
        if runtime_id is not None and runtime_id in self._streams:
            self.loop.cancel(runtime_id)
            self._streams.pop(runtime_id, None)
            self.pb.Logger.log_info(f"tensorrt_llm: request {triton_id} cancelled by the client (stop)")
        if self.decoupled:
            request.get_response_sender().send(flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return None
        return _Stream(sender=None, streaming=False, prefix=[], final=self._tokens_response([]))

    def _submit(self, request: Any) -> _Stream | None:
        from triton_llm.runtime import InvalidRequestError

        if _pb.scalar(self.pb, request, "stop"):
            return self._stop(request)
        request_id = f"r{next(self._ids)}"
        triton_id = request.request_id() or ""
        if triton_id:
            self._by_triton_id[triton_id] = request_id
        sender = request.get_response_sender() if self.decoupled else None
        try:
            gen, streaming, prefix = self._request(request, request_id)
        except (RequestError, InvalidRequestError, ValueError, TypeError) as e:
            error = _pb.error_response(self.pb, f"bad request: {e}")
            if self.decoupled:
                sender.send(error, flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                return None
            return _Stream(sender=None, streaming=False, prefix=[], final=error)
        stream = _Stream(sender=sender, streaming=streaming, prefix=prefix, triton_id=triton_id)
        self._streams[request_id] = stream
        if streaming:
            sender.send(self._tokens_response([], 0))
        try:
            self.loop.submit(gen, self._on_event)
        except (InvalidRequestError, ValueError) as e:
            self._finish(request_id, _pb.error_response(self.pb, f"bad request: {e}"))
        return stream

    def execute(self, requests: list[Any]) -> list[Any] | None:
        streams = [self._submit(r) for r in requests]
        if self.decoupled:
            return None
        out = []
        for stream in streams:
            if stream is not None and stream.final is None:
                stream.done.wait()
            out.append(stream.final if stream is not None else None)
        return out

    def finalize(self) -> None:
        if self.loop is not None:
            self.loop.close()
