"""A local HTTP server that answers like the Hugging Face hub, for ``HF_ENDPOINT`` in tests.

It speaks the shapes ``huggingface_hub`` reads (``utils/_http.py: hf_raise_for_status`` and
``file_download.py: get_hf_file_metadata`` in huggingface_hub 2.4): ``HEAD``/``GET
/{repo}/resolve/{revision}/{file}`` answer with ``X-Repo-Commit``, ``ETag`` and
``Content-Length``; ``GET /api/models/{repo}/revision/{revision}`` (``HfApi.model_info``,
``snapshot_download``) answers ``{"id", "sha", "siblings"}``. Failures carry the hub's
``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``GatedRepo``) and ``X-Error-Message``
headers with its status codes:
404 for a missing repo or revision, 401 for a gated repo without a token, 403 for a token that
is not on a gated repo's authorized list (https://huggingface.co/docs/hub/models-gated).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class HubRepo:
    """One model repo: revisions (branch or tag -> commit) and its files."""

    revisions: dict[str, str]
    files: dict[str, bytes]
    gated: bool = False
    forbidden: bool = False  # 403 without X-Error-Code, as for a token lacking permission
    status: int | None = None  # answer every request with this status (e.g. 500)


@dataclass
class FakeHub:
    """Repos by id, and every request line seen."""

    repos: dict[str, HubRepo] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    url: str = ""


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _fail(self, status: int, code: str | None, message: str) -> None:
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            body = json.dumps({"error": message}).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def _serve(self) -> None:
            hub.requests.append(f"{self.command} {self.path}")
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
                repo_id, revision, filename = "/".join(parts[2:4]), parts[5], None
            elif len(parts) >= 5 and parts[2] == "resolve":
                repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            else:
                self._fail(404, None, "Not found")
                return
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._fail(404, "RepoNotFound", "Repository not found")
                return
            if repo.status is not None:
                self._fail(repo.status, None, "Internal Error")
                return
            token = self.headers.get("Authorization")
            if repo.gated and token is None:
                self._fail(
                    401,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in.",
                )
                return
            if repo.gated:
                self._fail(
                    403,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted and you are not in the authorized list. "
                    f"Visit https://huggingface.co/{repo_id} to ask for access.",
                )
                return
            if repo.forbidden:
                self._fail(403, None, "Forbidden: this token has no read access to the repository")
                return
            commit = repo.revisions.get(revision) or (
                revision if revision in repo.revisions.values() else None
            )
            if commit is None:
                self._fail(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return
            if filename is None:
                self._json({"id": repo_id, "sha": commit, "siblings": [{"rfilename": f} for f in repo.files]})
                return
            data = repo.files.get(filename)
            if data is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Repo-Commit", commit)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)

        do_HEAD = _serve
        do_GET = _serve

    return Handler


@contextmanager
def fake_hub(repos: dict[str, HubRepo]) -> Iterator[FakeHub]:
    """Run a :class:`FakeHub` on a free 127.0.0.1 port until the block ends."""
    hub = FakeHub(repos=repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
