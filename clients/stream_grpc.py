#!/usr/bin/env python3
"""Stream a completion from the triton-llm ensemble using only tritonclient (and numpy).

    python clients/stream_grpc.py --url 127.0.0.1:8001 "Tell me a joke" --max-tokens 64

Prints the text as it arrives (exact: spaces and multi-byte characters included, with or
without a request id). Each request carries a unique id anyway: on GPU the ensemble can
stop a cancelled request in TensorRT-LLM only by its id (model_repository/README.md).
"""

import argparse
import queue
import sys
import uuid

import numpy as np
import tritonclient.grpc as grpcclient


def tensor(name, value, dtype, triton_dtype):
    arr = np.array([[value]], dtype=dtype)
    t = grpcclient.InferInput(name, list(arr.shape), triton_dtype)
    t.set_data_from_numpy(arr)
    return t


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("prompt")
    parser.add_argument("--url", default="127.0.0.1:8001", help="Triton gRPC host:port")
    parser.add_argument("--model", default="ensemble", help="ensemble or tensorrt_llm_bls")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each response")
    args = parser.parse_args()

    inputs = [
        tensor("text_input", args.prompt.encode("utf-8"), object, "BYTES"),
        tensor("max_tokens", args.max_tokens, np.int32, "INT32"),
        tensor("stream", True, bool, "BOOL"),
    ]
    responses = queue.Queue()
    client = grpcclient.InferenceServerClient(args.url)
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    done = False
    try:
        client.async_stream_infer(
            args.model, inputs, request_id=uuid.uuid4().hex, enable_empty_final_response=True
        )
        while not done:
            result, error = responses.get(timeout=args.timeout)
            if error is not None:
                print(f"\nerror: {error}", file=sys.stderr)
                return 1
            text = result.as_numpy("text_output")
            if text is not None and text.size:
                sys.stdout.write(text.reshape(-1)[0].decode("utf-8"))
                sys.stdout.flush()
            done = result.get_response().parameters["triton_final_response"].bool_param
    finally:
        client.stop_stream(cancel_requests=not done)
        client.close()
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
