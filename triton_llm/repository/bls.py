"""``tensorrt_llm_bls``: the ensemble's pipeline as business-logic scripting.

One thread per request calls ``preprocessing``, then ``tensorrt_llm`` (decoupled when
streaming) and detokenizes in-process with its own :class:`IncrementalDetokenizer`, so
streamed text is exact without any cross-model state.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import numpy as np

from triton_llm.repository import _pb
from triton_llm.repository.detokenizer import IncrementalDetokenizer, decode
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
        self.skip = params.get("skip_special_tokens", "true").lower() == "true"
        self.tokenizer = load_tokenizer(params["tokenizer_dir"])
        self._threads: set[threading.Thread] = set()

    def _tensors(self, request: Any, names: dict[str, str]) -> list[Any]:
        out = []
        for ours, theirs in names.items():
            arr = _pb.get(self.pb, request, ours)
            if arr is not None:
                out.append(self.pb.Tensor(theirs, arr))
        return out

    def _run(self, request: Any) -> None:
        pb = self.pb
        sender = request.get_response_sender()
        final = pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        try:
            pre = pb.InferenceRequest(
                model_name="preprocessing",
                inputs=self._tensors(request, _PRE_INPUTS),
                requested_output_names=[*_PRE_TO_LLM],
            ).exec()
            if pre.has_error():
                raise RuntimeError(pre.error().message())
            inputs = [pb.Tensor(_PRE_TO_LLM[t.name()], t.as_numpy()) for t in pre.output_tensors()]
            inputs += self._tensors(request, _LLM_INPUTS)
            streaming = bool(_pb.scalar(pb, request, "stream") or False)
            inner_id = f"bls-{uuid.uuid4().hex}"
            llm_request = pb.InferenceRequest(
                model_name=self.llm,
                inputs=inputs,
                requested_output_names=["output_ids", "sequence_length"],
                request_id=inner_id,
            )
            detok = IncrementalDetokenizer(self.tokenizer, skip_special_tokens=self.skip)
            for response in llm_request.exec(decoupled=True):
                if sender.is_cancelled():
                    self._stop(inner_id)
                    pb.Logger.log_info("tensorrt_llm_bls: request cancelled by the client")
                    break
                if response.has_error():
                    raise RuntimeError(response.error().message())
                tensor = pb.get_output_tensor_by_name(response, "output_ids")
                if tensor is None:
                    continue
                ids = [int(x) for x in tensor.as_numpy().reshape(-1)]
                if streaming:
                    piece = detok.push(ids) if ids else detok.flush()
                    if piece or ids:
                        self._send_text(sender, piece, len(ids))
                else:
                    detok.ids.extend(ids)
            if not streaming:
                text = decode(self.tokenizer, detok.ids, skip_special_tokens=self.skip)
                self._send_text(sender, text, len(detok.ids))
            else:
                tail = detok.flush()
                if tail:
                    self._send_text(sender, tail, 0)
            sender.send(flags=final)
        except Exception as e:  # every failure must reach the client and end the stream
            try:
                sender.send(_pb.error_response(pb, str(e)), flags=final)
            except Exception as gone:  # the client cancelled: nobody to tell
                pb.Logger.log_info(f"tensorrt_llm_bls: request cancelled by the client ({gone})")

    def _stop(self, inner_id: str) -> None:
        """Cancel the tensorrt_llm request with TensorRT-LLM's ``stop`` input."""
        pb = self.pb
        one = np.ones((1, 1), dtype=np.int32)
        inputs = [
            pb.Tensor("input_ids", one),
            pb.Tensor("input_lengths", one),
            pb.Tensor("request_output_len", one),
            pb.Tensor("stop", np.ones((1, 1), dtype=bool)),
        ]
        request = pb.InferenceRequest(
            model_name=self.llm, inputs=inputs, requested_output_names=["output_ids"], request_id=inner_id
        )
        for _ in request.exec(decoupled=True):
            pass

    def _send_text(self, sender: Any, text: str, tokens: int) -> None:
        out = np.array([[text.encode("utf-8")]], dtype=object)
        count = np.array([[tokens]], dtype=np.int32)
        tensors = [self.pb.Tensor("text_output", out), self.pb.Tensor("num_output_tokens", count)]
        sender.send(self.pb.InferenceResponse(output_tensors=tensors))

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            thread = threading.Thread(target=self._run, args=(request,), daemon=True)
            self._threads = {t for t in self._threads if t.is_alive()} | {thread}
            thread.start()
        return None

    def finalize(self) -> None:
        for thread in list(self._threads):
            thread.join(timeout=5)
