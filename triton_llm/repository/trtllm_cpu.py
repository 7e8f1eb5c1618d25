"""The ``tensorrt_llm`` model on CPU: our runtime behind the python backend.

On GPU the same config renders with ``backend: "tensorrtllm"`` and TensorRT-LLM's C++
backend serves the engine; on CPU it renders with ``backend: "python"`` and this module
serves the cpu backend's checkpoint with :mod:`triton_llm.runtime`, speaking the same
tensors (input_ids, input_lengths, request_output_len, streaming, ... -> output_ids,
sequence_length) and responding as TensorRT-LLM 1.2's backend does: a streamed response
carries only the new tokens and ``sequence_length`` counts them, the last one is flagged
final, and there are no empty responses; ``return_perf_metrics`` adds ``arrival_time_ns``.

Cancellation reaches the runtime within one decode step, from every source: Triton's
cancellation flag (checked on every token and every ``cancellation_check_period_ms`` for
queued requests), a response the client no longer takes, and the ``stop`` input, addressed
by Triton request id as in TensorRT-LLM or by ``arrival_time_ns=<n>`` (what postprocessing
relays for an ensemble request sent without id; see triton_llm.repository.cancel).
Counts and load go to Triton's /metrics (triton_llm.repository.metrics).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triton_llm.repository import _pb
from triton_llm.repository.cancel import ARRIVAL_ID_PREFIX, Poller
from triton_llm.repository.metrics import RuntimeMetrics, backend_default
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
    from triton_llm.runtime import SamplingParams, sampling_problems

    out: dict[str, Any] = {}
    temperature, top_k, top_p, seed = (values.get(k) for k in ("temperature", "top_k", "top_p", "seed"))
    if temperature is not None:
        out["temperature"] = float(temperature)
    if top_k is not None:
        out["top_k"] = int(top_k)
    if top_p is not None:
        out["top_p"] = float(top_p)
    for name, value, rule in sampling_problems(SamplingParams(**out)):
        raise RequestError(f"{name} {rule} (got {value})")
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
            comm.abort(1)
        raise
    if comm is not None:
        comm.barrier()  # rank 0 turns ready only once every rank has loaded
    if comm is not None and comm.rank > 0:
        from triton_llm.runtime import run_worker

        threading.Thread(target=run_worker, args=(generator,), daemon=True, name="tp-worker").start()
        return None
    return GeneratorLoop(generator)


@dataclass
class _Stream:
    request: Any
    sender: Any
    streaming: bool
    prefix: list[int]
    arrival_ns: int
    perf: bool  # return_perf_metrics
    stop_ids: tuple[str, ...]
    tokens: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one sender call at a time
    closed: bool = False  # the final response is sent
    done: threading.Event = field(default_factory=threading.Event)
    final: Any = None  # non-decoupled mode: the one response
    input_tokens: int = 0  # prompt length, for nv_llm_input_token_len
    queued: bool = False  # the runtime accepted it: its lengths are observed when it ends


class CpuLlmModel:
    """Serves ``tensorrt_llm`` requests from the CPU runtime (decoupled or not)."""

    def __init__(self, args: dict[str, Any], pb: Any, *, loop: Any = None) -> None:
        self.pb = pb
        self.params = _pb.model_parameters(args)
        config = _pb.model_config(args)
        # Its background threads call into the server; if the server dies, only this ends the stub.
        self._watchdog = _pb.exit_with_parent() if loop is None else None
        self.decoupled = bool(config.get("model_transaction_policy", {}).get("decoupled", False))
        self.exclude_input = self.params.get("exclude_input_in_output", "true").lower() == "true"
        self.loop = loop if loop is not None else create_loop(self.params)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._by_stop_id: dict[str, str] = {}
        self._last_arrival = 0
        self.metrics: RuntimeMetrics | None = None
        self._pollers: list[Poller] = []
        if self.loop is None:  # ranks > 0 of a group serve no requests (and export no metrics)
            return
        self.metrics = RuntimeMetrics(pb, model=args["model_name"], version=str(args["model_version"]))
        cancel_period = self._period("cancellation_check_period_ms")
        stats_period = self._period("stats_check_period_ms")
        self._pollers = [
            Poller(cancel_period, self._check_cancelled, name="cancel-check", on_error=self._log_error),
            Poller(stats_period, self._report_stats, name="stats", on_error=self._log_error),
        ]

    def _period(self, name: str) -> float:
        value = self.params.get(name, "").strip()
        return (int(value) if value else backend_default(name)) / 1000.0

    def _log_error(self, e: Exception) -> None:
        self.pb.Logger.log_error(f"tensorrt_llm: {type(e).__name__}: {e}")

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
    def _tokens_response(self, stream: _Stream, tokens: list[int]) -> Any:
        arr = np.asarray(tokens, dtype=np.int32).reshape(1, 1, -1)
        tensors = [
            self.pb.Tensor("output_ids", arr),
            self.pb.Tensor("sequence_length", np.array([[arr.shape[-1]]], dtype=np.int32)),
        ]
        if stream.perf:
            tensors.append(self.pb.Tensor("arrival_time_ns", np.array([[stream.arrival_ns]], dtype=np.int64)))
        return self.pb.InferenceResponse(output_tensors=tensors)

    def _take(self, request_id: str) -> _Stream | None:
        """Remove a stream from the registry; exactly one caller gets it."""
        with self._lock:
            stream = self._streams.pop(request_id, None)
            if stream is not None:
                for key in stream.stop_ids:
                    if self._by_stop_id.get(key) == request_id:
                        del self._by_stop_id[key]
            return stream

    @staticmethod
    def _flagged(stream: _Stream) -> bool:
        """Triton's cancellation flag, asked only while the request lives (until its final response).

        The python backend releases a request with its final response; asking after that reads
        freed memory in the server, hence the stream lock the final send also holds.
        """
        with stream.lock:
            return not stream.closed and bool(stream.request.is_cancelled())

    def _send(self, stream: _Stream, response: Any, *, final: bool) -> None:
        """Send on a decoupled stream (nothing after the final response). Raises what the sender raises.

        The stream counts as closed even when the final send raises: the python backend's sender
        closes itself before it passes the response to the server, so a second final send could only
        fail, and the server ends the request whenever the final flag reached it (python_backend r24.10
        src/response_sender.cc UpdateStateAndCounters, src/python_be.cc ResponseSendDecoupled).
        """
        with stream.lock:
            if stream.closed:
                return
            flags = self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0
            stream.closed = final
            if response is None:
                stream.sender.send(flags=flags)
            else:
                stream.sender.send(response, flags=flags)

    def _observe(self, stream: _Stream) -> None:
        if self.metrics is not None and stream.queued:
            self.metrics.finished(input_tokens=stream.input_tokens, output_tokens=len(stream.tokens))

    def _finish(self, request_id: str, response: Any) -> None:
        stream = self._take(request_id)
        if stream is None:
            return
        self._observe(stream)
        if self.decoupled:
            try:
                self._send(stream, response, final=True)
            except Exception as e:  # the client went away at the very end
                self._log_error(e)
        else:
            with stream.lock:
                stream.closed, stream.final = True, response
        stream.done.set()

    def _cancel(self, request_id: str, reason: str, why: str) -> None:
        """Stop a request in the runtime (at its next step) and end its Triton request."""
        stream = self._take(request_id)
        if stream is None:
            return  # finished or cancelled already
        self.loop.cancel(request_id)
        self._observe(stream)
        if self.decoupled:
            with contextlib.suppress(Exception):  # nobody is listening any more
                self._send(stream, None, final=True)
        else:
            with stream.lock:
                stream.closed, stream.final = True, _pb.error_response(self.pb, "request cancelled")
        stream.done.set()
        if self.metrics is not None:
            self.metrics.cancelled(reason)
        self.pb.Logger.log_info(f"tensorrt_llm: request {request_id} cancelled by the client ({why})")

    def _abandon(self, request_id: str, error: Exception) -> None:
        """End a request whose event could not be handled: stop it, send the error as its final response."""
        stream = self._take(request_id)
        if stream is None:
            return
        self.loop.cancel(request_id)
        response = _pb.error_response(self.pb, f"tensorrt_llm failed: {type(error).__name__}: {error}")
        if self.decoupled:
            with contextlib.suppress(Exception):  # _log_error below tells what matters
                self._send(stream, response, final=True)
        else:
            with stream.lock:
                stream.closed, stream.final = True, response
        stream.done.set()

    def _on_event(self, event: Any) -> None:
        """One runtime event. Whatever fails here, the request still ends with a final response:
        a request Triton never sees end holds its model version, which then can never unload."""
        try:
            self._handle_event(event)
        except Exception as e:
            self._log_error(e)
            self._abandon(event.request_id, e)

    def _handle_event(self, event: Any) -> None:
        request_id = event.request_id
        with self._lock:
            stream = self._streams.get(request_id)
        if stream is None:
            return
        if self._flagged(stream):
            self._cancel(request_id, "client", "Triton cancellation")
            return
        if event.error:
            self._finish(request_id, _pb.error_response(self.pb, str(event.error)))
            return
        new = [int(t) for t in event.new_token_ids]
        stream.tokens.extend(new)
        if stream.streaming:
            if event.finished:
                self._finish(request_id, self._tokens_response(stream, new) if new else None)
                return
            try:
                if new:
                    self._send(stream, self._tokens_response(stream, new), final=False)
            except Exception as e:  # the client no longer takes responses
                self._cancel(request_id, "client", f"{type(e).__name__}: {e}")
            return
        if event.finished:
            self._finish(request_id, self._tokens_response(stream, stream.prefix + stream.tokens))

    def _check_cancelled(self) -> None:
        """Every cancellation_check_period_ms: Triton's flag on every request, queued ones included."""
        with self._lock:
            streams = list(self._streams.items())
        for request_id, stream in streams:
            if self._flagged(stream):
                self._cancel(request_id, "client", "Triton cancellation")

    def _report_stats(self) -> None:
        if self.metrics is not None:
            self.metrics.update(self.loop.stats())

    def _stop(self, request: Any) -> _Stream | None:
        """A ``stop`` request: cancel the running request it names, as TensorRT-LLM's backend does.

        It names the request by Triton request id, or (CPU runtime only) by
        ``arrival_time_ns=<n>``; an unknown id is not an error (the request may have ended),
        an empty id is.
        """
        key = request.request_id() or ""
        error = None
        if not key:
            error = _pb.error_response(self.pb, "bad request: stop needs the id of the request to stop")
        else:
            with self._lock:
                runtime_id = self._by_stop_id.get(key)
            if runtime_id is not None:
                self._cancel(runtime_id, "stop", f"stop {key}")
        if self.decoupled:
            sender = request.get_response_sender()
            flags = self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL
            if error is None:
                sender.send(flags=flags)
            else:
                sender.send(error, flags=flags)
            return None
        return _Stream(request, None, False, [], 0, False, (), final=error or self._empty_response())

    def _empty_response(self) -> Any:
        empty = np.zeros((1, 1, 0), dtype=np.int32)
        return self.pb.InferenceResponse(
            output_tensors=[
                self.pb.Tensor("output_ids", empty),
                self.pb.Tensor("sequence_length", np.zeros((1, 1), dtype=np.int32)),
            ]
        )

    def _arrival(self) -> int:
        """A steady-clock time, distinct per request (TensorRT-LLM's arrival_time_ns)."""
        with self._lock:
            self._last_arrival = max(time.monotonic_ns(), self._last_arrival + 1)
            return self._last_arrival

    def _submit(self, request: Any) -> _Stream | None:
        from triton_llm.runtime import InvalidRequestError

        if _pb.scalar(self.pb, request, "stop"):
            return self._stop(request)
        request_id = f"r{next(self._ids)}"
        sender = request.get_response_sender() if self.decoupled else None
        try:
            gen, streaming, prefix = self._request(request, request_id)
            perf = bool(_pb.scalar(self.pb, request, "return_perf_metrics") or False)
        except (RequestError, InvalidRequestError, ValueError, TypeError) as e:
            error = _pb.error_response(self.pb, f"bad request: {e}")
            if sender is not None:  # decoupled
                sender.send(error, flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                return None
            return _Stream(request, None, False, [], 0, False, (), final=error)
        arrival = self._arrival()
        triton_id = request.request_id() or ""
        stop_ids = (f"{ARRIVAL_ID_PREFIX}{arrival}", *((triton_id,) if triton_id else ()))
        stream = _Stream(
            request, sender, streaming, prefix, arrival, perf, stop_ids, input_tokens=len(gen.input_ids)
        )
        with self._lock:
            self._streams[request_id] = stream
            for key in stop_ids:
                self._by_stop_id[key] = request_id
        stream.queued = True  # before submit: its first event may end it on the loop's thread
        try:
            self.loop.submit(gen, self._on_event)
        except (InvalidRequestError, ValueError) as e:
            stream.queued = False
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
        for poller in self._pollers:
            poller.close()
        if self.loop is not None:
            self.loop.close()
        _pb.stop_watchdog(self._watchdog)
