"""The preprocessing and postprocessing python-backend models (their model.py files delegate here)."""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from triton_llm.repository import _pb
from triton_llm.repository.cancel import send_stop, stop_id, stream_key
from triton_llm.repository.detokenizer import StreamStates, postprocess_text
from triton_llm.repository.preprocess import Preprocessor, RequestError, load_tokenizer


def cancelled_response(pb: Any) -> Any:
    """The answer to a request Triton marked cancelled (status CANCELLED ends an ensemble)."""
    return pb.InferenceResponse(
        output_tensors=[], error=pb.TritonError("request cancelled", pb.TritonError.CANCELLED)
    )


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


class PreprocessingModel:
    """``preprocessing``: QUERY text to INPUT_ID, limits checked, words lists encoded."""

    def __init__(self, args: dict[str, Any], pb: Any) -> None:
        self.pb = pb
        params = _pb.model_parameters(args)
        self.pre = Preprocessor(
            load_tokenizer(params["tokenizer_dir"]),
            max_input_len=int(params["max_input_len"]),
            max_seq_len=int(params["max_seq_len"]),
            chat_template=_flag(params.get("chat_template", "false")),
            add_special_tokens=_flag(params.get("add_special_tokens", "true")),
        )

    def _one(self, request: Any) -> Any:
        pb = self.pb
        queries = _pb.strings(pb, request, "QUERY")
        if len(queries) != 1:
            raise RequestError(f"send exactly one text_input per request (got {len(queries)})")
        max_tokens = _pb.scalar(pb, request, "REQUEST_OUTPUT_LEN")
        if max_tokens is None:
            raise RequestError("max_tokens is required")
        chat = _pb.scalar(pb, request, "APPLY_CHAT_TEMPLATE")
        messages = _pb.strings(pb, request, "CHAT_MESSAGES")
        if len(messages) > 1:
            raise RequestError(f"send at most one chat_messages per request (got {len(messages)})")
        prepared = self.pre.prepare(
            queries[0],
            max_tokens=int(max_tokens),
            stop_words=_pb.strings(pb, request, "STOP_WORDS_DICT"),
            bad_words=_pb.strings(pb, request, "BAD_WORDS_DICT"),
            end_id=_pb.scalar(pb, request, "END_ID"),
            pad_id=_pb.scalar(pb, request, "PAD_ID"),
            apply_chat_template=None if chat is None else bool(chat),
            chat_messages=messages[0] if messages else None,
        )
        ids = prepared.input_ids
        out = {
            "INPUT_ID": ids.reshape(1, -1),
            "REQUEST_INPUT_LEN": np.array([[ids.size]], dtype=np.int32),
            "BAD_WORDS_IDS": prepared.bad_words[None, ...],
            "STOP_WORDS_IDS": prepared.stop_words[None, ...],
            "REQUEST_OUTPUT_LEN": np.array([[prepared.output_len]], dtype=np.int32),
            "OUT_END_ID": np.array([[prepared.end_id]], dtype=np.int32),
            "OUT_PAD_ID": np.array([[prepared.pad_id]], dtype=np.int32),
            "OUT_RETURN_PERF_METRICS": np.array([[True]], dtype=bool),
        }
        return pb.InferenceResponse(output_tensors=[pb.Tensor(k, v) for k, v in out.items()])

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except (RequestError, ValueError, UnicodeDecodeError) as e:
                responses.append(_pb.error_response(self.pb, f"bad request: {e}"))
        return responses


class PostprocessingModel:
    """``postprocessing``: TOKENS_BATCH to OUTPUT text, exact when streaming; relays cancellations.

    Each response is one more piece of its stream (see
    :func:`triton_llm.repository.detokenizer.postprocess_text`), keyed by the request id and
    ``ARRIVAL_TIME_NS`` (:func:`triton_llm.repository.cancel.stream_key`). Triton creates every
    postprocessing request after an ensemble's cancellation already cancelled while the
    ``tensorrt_llm`` step keeps generating, so a cancelled request here sends ``tensorrt_llm``
    a ``stop`` for that generation (on a relay thread) and answers CANCELLED, which ends the
    ensemble. The model must therefore run without dynamic batching: a batcher drops
    cancelled requests before the model sees them.
    """

    def __init__(self, args: dict[str, Any], pb: Any) -> None:
        self.pb = pb
        params = _pb.model_parameters(args)
        self.skip = _flag(params.get("skip_special_tokens", "true"))
        self.llm = params.get("tensorrt_llm_model_name") or "tensorrt_llm"
        # In a versioned repository each postprocessing version stops its own tensorrt_llm version.
        self.llm_version = int(params.get("tensorrt_llm_model_version") or -1)
        self.engine_key = params.get("engine_key", "").encode()
        self.tokenizer = load_tokenizer(params["tokenizer_dir"])
        self.states = StreamStates(self.tokenizer, skip_special_tokens=self.skip)
        self._relay = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cancel-relay")
        self._relayed: OrderedDict[str, None] = OrderedDict()  # stop ids already sent (bounded)

    def _relay_cancel(self, request_id: str, arrival: int | None) -> None:
        self.states.forget(stream_key(request_id, arrival))
        target = stop_id(request_id, arrival)
        if not target or target in self._relayed:
            return
        self._relayed[target] = None
        while len(self._relayed) > 1024:
            self._relayed.popitem(last=False)
        self._relay.submit(self._send_stop, target)

    def _send_stop(self, target: str) -> None:
        try:
            send_stop(self.pb, self.llm, target, model_version=self.llm_version)
        except Exception as e:  # the server is shutting down, or the model is gone
            self.pb.Logger.log_error(f"postprocessing: could not stop {self.llm} request {target}: {e}")

    def _one(self, request: Any) -> Any:
        pb = self.pb
        tokens: Any = _pb.get(pb, request, "TOKENS_BATCH")
        lengths: Any = _pb.get(pb, request, "SEQUENCE_LENGTH")
        if tokens is None or lengths is None:
            raise ValueError("postprocessing needs TOKENS_BATCH and SEQUENCE_LENGTH")
        arrivals = _pb.get(pb, request, "ARRIVAL_TIME_NS")
        request_id = request.request_id() or ""
        if tokens.ndim == 2:  # [batch, len] -> [batch, beam, len]
            tokens = tokens[:, None, :]
        batch = tokens.shape[0]
        arrival: list[int | None] = [None] * batch
        if arrivals is not None:
            arrival = [int(x) for x in arrivals.reshape(batch, -1)[:, 0]]
        if request.is_cancelled():
            for b in range(batch):
                self._relay_cancel(request_id, arrival[b])
            return cancelled_response(pb)
        lengths = lengths.reshape(tokens.shape[0], tokens.shape[1])
        texts = []
        counts = []
        for b in range(tokens.shape[0]):
            row = []
            key = stream_key(request_id, arrival[b])
            for beam in range(tokens.shape[1]):
                seq_len = int(lengths[b, beam])
                ids = [int(x) for x in tokens[b, beam, : min(seq_len, tokens.shape[2])]]
                stream = f"{key}/{beam}" if key and tokens.shape[1] > 1 else key
                row.append(postprocess_text(self.states, stream, ids).encode("utf-8"))
            texts.append(row)
            counts.append([len(ids) if tokens.shape[1] == 1 else int(lengths[b].max())])
        out = np.array(texts, dtype=object).reshape(tokens.shape[0], -1)
        return pb.InferenceResponse(
            output_tensors=[
                pb.Tensor("OUTPUT", out),
                pb.Tensor("NUM_OUTPUT_TOKENS", np.array(counts, dtype=np.int32)),
                pb.Tensor("ENGINE_KEY", np.array([[self.engine_key]] * batch, dtype=object)),
            ]
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except (ValueError, TypeError, AttributeError) as e:
                responses.append(_pb.error_response(self.pb, f"postprocessing failed: {e}"))
        return responses

    def finalize(self) -> None:
        self._relay.shutdown(wait=True, cancel_futures=False)
