"""``tensorrt_llm_bls``: the ensemble's pipeline as business-logic scripting.

One thread per request calls ``preprocessing``, then ``tensorrt_llm`` (decoupled when
streaming) and detokenizes in-process with its own :class:`IncrementalDetokenizer`, so
streamed text is exact without any cross-model state.

The BLS request is the one Triton cancels, but Triton 2.51 cannot cancel the BLS's own
``tensorrt_llm`` request: on every response, and every cancellation check period for a
request still queued in ``tensorrt_llm``, a cancelled BLS request stops its ``tensorrt_llm``
request with TensorRT-LLM's ``stop`` input (by the id the BLS gave it), as the C++ backend
understands too.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import numpy as np

from triton_llm.repository import _pb
from triton_llm.repository.cancel import Poller, Watched, send_stop
from triton_llm.repository.detokenizer import IncrementalDetokenizer
from triton_llm.repository.metrics import backend_default
from triton_llm.repository.preprocess import load_tokenizer

# ensemble input -> (model, input name)
_PRE_INPUTS = {
    "text_input": "QUERY",
    "max_tokens": "REQUEST_OUTPUT_LEN",
    "bad_words": "BAD_WORDS_DICT",
    "stop_words": "STOP_WORDS_DICT",
    "end_id": "END_ID",
    "pad_id": "PAD_ID",
    "apply_chat_template": "APPLY_CHAT_TEMPLATE",
    "chat_messages": "CHAT_MESSAGES",
}
_PRE_TO_LLM = {
    "INPUT_ID": "input_ids",
    "REQUEST_INPUT_LEN": "input_lengths",
    "REQUEST_OUTPUT_LEN": "request_output_len",
    "STOP_WORDS_IDS": "stop_words_list",
    "BAD_WORDS_IDS": "bad_words_list",
    "OUT_END_ID": "end_id",
    "OUT_PAD_ID": "pad_id",
}
_LLM_INPUTS = {
    "exclude_input_in_output": "exclude_input_in_output",
    "top_k": "runtime_top_k",
    "top_p": "runtime_top_p",
    "temperature": "temperature",
    "length_penalty": "len_penalty",
    "repetition_penalty": "repetition_penalty",
    "min_tokens": "min_tokens",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "return_log_probs": "return_log_probs",
    "beam_width": "beam_width",
    "stream": "streaming",
}


class BlsModel:
    """Decoupled BLS model: one worker thread per request."""

    def __init__(self, args: dict[str, Any], pb: Any) -> None:
        self.pb = pb
        params = _pb.model_parameters(args)
        self.llm = params.get("tensorrt_llm_model_name") or "tensorrt_llm"
        # A versioned repository pins the versions this BLS calls (-1: the server's default version).
        self.llm_version = int(params.get("tensorrt_llm_model_version") or -1)
        self.pre_version = int(params.get("preprocessing_model_version") or -1)
        self.engine_key = params.get("engine_key", "").encode()
        self.skip = params.get("skip_special_tokens", "true").lower() == "true"
        self.tokenizer = load_tokenizer(params["tokenizer_dir"])
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._inflight: dict[str, Watched] = {}  # tensorrt_llm request id -> the BLS request
        self._stopped: set[str] = set()
        period = backend_default("cancellation_check_period_ms") / 1000.0
        self._poller = Poller(
            period, self._check_cancelled, name="bls-cancel-check", on_error=self._log_error
        )

    def _log_error(self, e: Exception) -> None:
        self.pb.Logger.log_error(f"tensorrt_llm_bls: {type(e).__name__}: {e}")

    def _tensors(self, request: Any, names: dict[str, str]) -> list[Any]:
        out = []
        for ours, theirs in names.items():
            arr = _pb.get(self.pb, request, ours)
            if arr is not None:
                out.append(self.pb.Tensor(theirs, arr))
        return out

    def _stop_once(self, inner_id: str) -> None:
        """Stop our tensorrt_llm request (once, whichever check sees the cancellation first)."""
        with self._lock:
            if inner_id in self._stopped or inner_id not in self._inflight:
                return
            self._stopped.add(inner_id)
        self.pb.Logger.log_info(f"tensorrt_llm_bls: request {inner_id} cancelled by the client")
        send_stop(self.pb, self.llm, inner_id, model_version=self.llm_version)

    def _check_cancelled(self) -> None:
        with self._lock:
            inflight = list(self._inflight.items())
        for inner_id, watched in inflight:
            if watched.is_cancelled():
                self._stop_once(inner_id)

    def _run(self, request: Any) -> None:
        pb = self.pb
        sender = request.get_response_sender()
        final = pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        inner_id = f"bls-{uuid.uuid4().hex}"
        watched = Watched(request)
        try:
            pre = pb.InferenceRequest(
                model_name="preprocessing",
                model_version=self.pre_version,
                inputs=self._tensors(request, _PRE_INPUTS),
                requested_output_names=[*_PRE_TO_LLM],
            ).exec()
            if pre.has_error():
                raise RuntimeError(pre.error().message())
            inputs = [pb.Tensor(_PRE_TO_LLM[t.name()], t.as_numpy()) for t in pre.output_tensors()]
            inputs += self._tensors(request, _LLM_INPUTS)
            streaming = bool(_pb.scalar(pb, request, "stream") or False)
            llm_request = pb.InferenceRequest(
                model_name=self.llm,
                model_version=self.llm_version,
                inputs=inputs,
                requested_output_names=["output_ids", "sequence_length"],
                request_id=inner_id,
            )
            detok = IncrementalDetokenizer(self.tokenizer, skip_special_tokens=self.skip)
            with self._lock:
                self._inflight[inner_id] = watched
            cancelled = False
            for response in llm_request.exec(decoupled=True):  # read to the end, even when cancelled
                cancelled = cancelled or watched.is_cancelled()
                if cancelled:
                    self._stop_once(inner_id)
                    continue
                if response.has_error():
                    raise RuntimeError(response.error().message())
                tensor = pb.get_output_tensor_by_name(response, "output_ids")
                if tensor is None:
                    continue
                ids = [int(x) for x in tensor.as_numpy().reshape(-1)]
                piece = detok.push(ids)
                if streaming and ids:
                    self._send_text(sender, piece, len(ids))
            if not streaming and not cancelled:
                self._send_text(sender, detok.text, detok.count)
            watched.finish(lambda: sender.send(flags=final))
        except Exception as e:  # every failure must reach the client and end the stream
            error = _pb.error_response(pb, str(e))
            try:
                watched.finish(lambda: sender.send(error, flags=final))
            except Exception as gone:  # the client cancelled: nobody to tell
                pb.Logger.log_info(f"tensorrt_llm_bls: request cancelled by the client ({gone})")
        finally:
            with self._lock:
                self._inflight.pop(inner_id, None)
                self._stopped.discard(inner_id)

    def _send_text(self, sender: Any, text: str, tokens: int) -> None:
        out = np.array([[text.encode("utf-8")]], dtype=object)
        count = np.array([[tokens]], dtype=np.int32)
        key = np.array([[self.engine_key]], dtype=object)
        tensors = [
            self.pb.Tensor("text_output", out),
            self.pb.Tensor("num_output_tokens", count),
            self.pb.Tensor("engine_key", key),
        ]
        sender.send(self.pb.InferenceResponse(output_tensors=tensors))

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            thread = threading.Thread(target=self._run, args=(request,), daemon=True)
            self._threads = {t for t in self._threads if t.is_alive()} | {thread}
            thread.start()
        return None

    def finalize(self) -> None:
        self._poller.close()
        for thread in list(self._threads):
            thread.join(timeout=5)
