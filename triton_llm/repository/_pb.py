"""Small helpers shared by the python-backend models (``pb`` is ``triton_python_backend_utils``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np


def model_parameters(args: dict[str, Any]) -> dict[str, str]:
    """The model's parameters as a flat name -> string mapping.

    Those of its config.pbtxt, overlaid with the ``parameters`` of ``<model dir>/<version>/version.json``
    when the version has one: in a versioned repository (:mod:`triton_llm.repository.versions`) the
    versions of one model share one config.pbtxt, and each version's own engine settings live there.
    """
    config = json.loads(args["model_config"])
    params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
    repository, version = args.get("model_repository"), args.get("model_version")
    if repository and version:
        version_file = Path(repository) / str(version) / "version.json"
        if version_file.is_file():
            params.update(json.loads(version_file.read_text())["parameters"])
    return params


def model_config(args: dict[str, Any]) -> dict[str, Any]:
    """The model's parsed config."""
    return json.loads(args["model_config"])


def get(pb: Any, request: Any, name: str) -> np.ndarray | None:
    """An input as a numpy array, or None when the client did not send it."""
    tensor = pb.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def scalar(pb: Any, request: Any, name: str) -> Any:
    """The single value of a ``[1]``-shaped input, or None when absent."""
    arr = get(pb, request, name)
    if arr is None or arr.size == 0:
        return None
    if arr.size != 1:
        raise ValueError(f"{name} must hold one value per request (got shape {list(arr.shape)})")
    value = arr.reshape(-1)[0]
    return value.item() if hasattr(value, "item") else value


def strings(pb: Any, request: Any, name: str) -> list[str]:
    """A STRING input as a flat list of str (empty when absent)."""
    arr = get(pb, request, name)
    if arr is None:
        return []
    return [to_str(x) for x in arr.reshape(-1)]


def to_str(value: Any) -> str:
    """Decode a BYTES element; bad UTF-8 is a client error."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def error_response(pb: Any, message: str) -> Any:
    """An InferenceResponse carrying an error the client sees verbatim."""
    return pb.InferenceResponse(output_tensors=[], error=pb.TritonError(message))


def exit_with_parent() -> subprocess.Popen[bytes]:
    """Start a watchdog that SIGKILLs this stub once its parent, the tritonserver, is gone.

    The python backend's stub exits by itself when its parent dies (pb_stub.cc's health thread
    polls ``kill(ppid, 0)``), but it must take the GIL to do so, and a thread of ours blocked in
    an IPC call to the dead server (a metric update, a response send) holds the GIL forever.
    The watchdog is a separate ``sh`` process, so it needs no GIL; it ends by itself when the
    stub ends. Returns it, for :func:`stop_watchdog` in ``finalize``.
    """
    me, parent = os.getpid(), os.getppid()
    script = (
        f"while kill -0 {parent} 2>/dev/null && kill -0 {me} 2>/dev/null; do sleep 0.3; done; "
        f"kill -0 {parent} 2>/dev/null || kill -9 {me} 2>/dev/null"
    )
    return subprocess.Popen(
        ["/bin/sh", "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )


def stop_watchdog(watchdog: subprocess.Popen[bytes] | None) -> None:
    """End the :func:`exit_with_parent` watchdog on a clean shutdown."""
    if watchdog is not None and watchdog.poll() is None:
        watchdog.kill()
        watchdog.wait()
