"""A tiny Kubernetes API server for the rollout tests: the real paths and JSON shapes, nothing of ours.

It serves what ``triton-llm rollout`` reads, exactly as kube-apiserver answers it:

- ``GET /apis/leaderworkerset.x-k8s.io/v1/namespaces/<ns>/leaderworkersets?labelSelector=...`` -> a
  ``LeaderWorkerSetList``;
- ``GET /api/v1/namespaces/<ns>/pods?labelSelector=...`` -> a ``PodList`` (equality selectors ``k=v,k2=v2``);
- ``POST /api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/<path>`` -> the pod's answer, forwarded to the
  address the test gives for that pod (a real Triton), or ``503`` with a ``Status`` object when the pod
  cannot be reached, as the API server's proxy answers ("error trying to reach service").

Unknown paths get a ``404`` ``Status``. Every request is recorded (method, path, Authorization header).
Objects are plain dicts the test edits between calls (the state a controller would write).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

TOKEN = "rollout-test-token"


@dataclass
class ApiState:
    """What the stub serves; tests mutate it."""

    lws: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    pod_source: Callable[[], list[dict[str, Any]]] | None = None  # computed per request when set
    pod_backends: dict[str, str] = field(default_factory=dict)  # "<pod>:<port>" -> http://host:port
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _selected(obj: dict[str, Any], selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    return True


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    state: ApiState

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any] | bytes) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[list[str], dict[str, list[str]]]:
        url = urllib.parse.urlsplit(self.path)
        with self.state.lock:
            self.state.requests.append((self.command, url.path, self.headers.get("Authorization", "")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return [], {}
        return url.path.strip("/").split("/"), urllib.parse.parse_qs(url.query)

    def do_GET(self) -> None:
        parts, query = self._record()
        if not parts:
            return
        selector = query.get("labelSelector", [""])[0]
        live_pods = self.state.pod_source() if self.state.pod_source else None
        with self.state.lock:
            if parts[:4] == ["apis", "leaderworkerset.x-k8s.io", "v1", "namespaces"] and parts[5:] == [
                "leaderworkersets"
            ]:
                items = [o for o in self.state.lws if o["metadata"]["namespace"] == parts[4]]
                kind = "LeaderWorkerSetList"
                api_version = "leaderworkerset.x-k8s.io/v1"
            elif parts[:3] == ["api", "v1", "namespaces"] and parts[4:] == ["pods"]:
                pods = self.state.pods if live_pods is None else live_pods
                items = [o for o in pods if o["metadata"]["namespace"] == parts[3]]
                kind, api_version = "PodList", "v1"
            else:
                self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
                return
            items = [o for o in items if _selected(o, selector)]
            body = {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        self._send(200, body)

    def do_POST(self) -> None:
        parts, _ = self._record()
        if not parts:
            return
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length)
        if (
            parts[:3] == ["api", "v1", "namespaces"]
            and len(parts) > 6
            and parts[4] == "pods"
            and parts[6] == "proxy"
        ):
            target = self.state.pod_backends.get(parts[5])
            if target is None:
                self._send(404, _status(404, "NotFound", f'pods "{parts[5].split(":")[0]}" not found'))
                return
            request = urllib.request.Request(
                f"{target}/{'/'.join(parts[7:])}", data=payload, method="POST",
                headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=120) as r:
                    self._send(r.status, r.read())
            except urllib.error.HTTPError as e:
                self._send(e.code, e.read())
            except OSError as e:
                self._send(503, _status(503, "ServiceUnavailable", f"error trying to reach service: {e}"))
            return
        self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))


@contextmanager
def api_server(state: ApiState) -> Iterator[str]:
    """Serve ``state`` on a free 127.0.0.1 port; yields the server URL; always shuts it down."""
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def write_kubeconfig(path: Path, url: str, *, namespace: str) -> Path:
    """A kubeconfig for the stub: one cluster, one token user, one context with a namespace."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stub", "cluster": {"server": url}}],
        "users": [{"name": "tester", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": "stub", "context": {"cluster": "stub", "user": "tester", "namespace": namespace}}
        ],
        "current-context": "stub",
    }
    path.write_text(yaml.safe_dump(config))
    return path
