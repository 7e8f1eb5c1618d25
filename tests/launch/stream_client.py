"""Stream from the test model over gRPC; print one JSON line per event (for tests, also run in namespaces).

Usage: python stream_client.py URL N [KILL_AFTER]
Events: {"value": v} per response, {"final": true} at the end, {"error": "..."} if the stream broke.
With KILL_AFTER, prints {"kill": true} after that many values and waits for a line on stdin first.
"""

from __future__ import annotations

import json
import queue
import sys

import numpy as np
import tritonclient.grpc as grpcclient


def main() -> int:
    url, n = sys.argv[1], int(sys.argv[2])
    kill_after = int(sys.argv[3]) if len(sys.argv) > 3 else None
    events: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: events.put((result, error)), stream_timeout=60)
    inp = grpcclient.InferInput("n", [1], "INT32")
    inp.set_data_from_numpy(np.array([n], dtype=np.int32))
    client.async_stream_infer("tensorrt_llm", [inp], enable_empty_final_response=True)
    count = 0
    try:
        while True:
            result, error = events.get(timeout=60)
            if error is not None:
                print(json.dumps({"error": str(error)}), flush=True)
                return 1
            params = result.get_response().parameters
            if "triton_final_response" in params and params["triton_final_response"].bool_param:
                print(json.dumps({"final": True, "count": count}), flush=True)
                return 0
            count += 1
            print(json.dumps({"value": int(result.as_numpy("value")[0])}), flush=True)
            if kill_after is not None and count == kill_after:
                print(json.dumps({"kill": True}), flush=True)
                sys.stdin.readline()
    except queue.Empty:
        print(json.dumps({"error": "no event for 60 s (hang)"}), flush=True)
        return 2
    finally:
        client.stop_stream(cancel_requests=True)
        client.close()


if __name__ == "__main__":
    sys.exit(main())
