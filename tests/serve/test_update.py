"""``repo update`` / ``repo rollback`` against a real Triton serving smollm2-135m, under streaming load.

The server is started by the real ``triton-llm serve`` (a subprocess), and every update runs the
real CLI with no arguments: it finds the server through serve's record. Several clients stream
continuously through the ensemble and the BLS while the engine is swapped; every response names
the engine that produced it (``engine_key``), so each stream is attributed to exactly one key.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from triton_llm.launch.tritonserver import free_port

MiB = 1 << 20


def _settings(cache: Path) -> Any:
    from triton_llm.settings import load_settings

    return load_settings(
        {"cache_dir": str(cache)}, environ={"HF_HUB_OFFLINE": "1"}, config_file=Path("/none")
    )


def _build(cache: Path, *overrides: str) -> Any:
    from triton_llm.engine.local import ensure_local_engine

    return ensure_local_engine(
        "smollm2-135m",
        settings=_settings(cache),
        overrides=list(overrides),
        backend="cpu",
        say=lambda _: None,
    )


@dataclass(frozen=True)
class Engines:
    a: str  # serving first
    b: str  # the update (another max_seq_len: another key, same checkpoint)
    corrupt: str  # a byte flipped in the store
    wrong_tp: str  # tp=3
    smoke_fails: str  # published with a golden answer the model does not give


@pytest.fixture(scope="module")
def engines(cpu_engine: Any, cpu_engine_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Engines:
    from triton_llm.store import open_store, publish

    cache = cpu_engine_cache
    b = _build(cache, "build.max_seq_len=1792")
    corrupt = _build(cache, "build.max_seq_len=1664")
    wrong_tp = _build(cache, "parallelism.tp=3")
    # corrupt: flip one byte of the stored golden.json and drop the local copy, so a restore must read it
    (stored,) = (cache / "store" / "engine" / corrupt.key / "data").glob("*/golden.json")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    shutil.rmtree(corrupt.engine_dir)
    # smoke_fails: B's files, published as another entry whose golden answer is not what the model says
    work = tmp_path_factory.mktemp("bad-golden") / "engine"
    shutil.copytree(
        b.engine_dir, work, ignore=shutil.ignore_patterns("*.triton-llm-entry*", ".triton-llm-entry*")
    )
    golden = json.loads((work / "golden.json").read_text())
    golden["output_ids"] = list(reversed(golden["output_ids"]))
    (work / "golden.json").write_text(json.dumps(golden))
    settings = _settings(cache)
    bad_key = "5b0e" * 16
    publish(
        open_store(settings.store_uri(), settings=settings),
        work,
        stage="engine",
        key=bad_key,
        fingerprint_inputs={},
        versions={},
        transfer=settings.transfer,
    )
    return Engines(a=cpu_engine.key, b=b.key, corrupt=corrupt.key, wrong_tp=wrong_tp.key, smoke_fails=bad_key)


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    grpc_url: str
    http_url: str
    env: dict[str, str]
    log: Path

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "triton_llm.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def state(self) -> dict[str, Any]:
        (record,) = (Path(self.env["TRITON_LLM_CACHE_DIR"]) / "servers").glob("*.json")
        repo = Path(json.loads(record.read_text())["repo"])
        return json.loads((repo / "triton-llm-versions.json").read_text())

    def rss(self) -> int:
        """Resident memory of the server and everything it started (python-backend stubs)."""
        root = psutil.Process(self.proc.pid)
        total = 0
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total


@pytest.fixture(scope="module")
def served(
    engines: Engines, cpu_engine_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITON_LLM_")}
    env.update(TRITON_LLM_CACHE_DIR=str(cpu_engine_cache), HF_HUB_OFFLINE="1")
    http, grpc, metrics = free_port(), free_port(), free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "triton_llm.cli", "serve", engines.a, "--openai-port", "0"),
                *("--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(proc, f"127.0.0.1:{grpc}", f"127.0.0.1:{http}", env, log)
    try:
        deadline = time.monotonic() + 300
        while b"ready: gRPC" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Stream:
    started: float
    model: str
    ended: float = 0.0
    keys: set[str] = field(default_factory=set)
    error: str | None = None
    pieces: int = 0


def stream_once(url: str, model: str, *, max_tokens: int = 24) -> Stream:
    """One streamed request through ``model``; records the engine key of every response."""
    import tritonclient.grpc as grpcclient

    s = Stream(started=time.monotonic(), model=model)
    client = grpcclient.InferenceServerClient(url)
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))

    def tensor(name: str, value: np.ndarray, dtype: str) -> Any:
        t = grpcclient.InferInput(name, list(value.shape), dtype)
        t.set_data_from_numpy(value)
        return t

    try:
        client.async_stream_infer(
            model,
            [
                tensor(
                    "text_input", np.array([[b"Tell me a story about a lighthouse."]], dtype=object), "BYTES"
                ),
                tensor("max_tokens", np.array([[max_tokens]], dtype=np.int32), "INT32"),
                tensor("stream", np.array([[True]]), "BOOL"),
            ],
            enable_empty_final_response=True,
        )
        while True:
            result, error = results.get(timeout=120)
            if error is not None:
                s.error = str(error)
                break
            if result.get_response().parameters["triton_final_response"].bool_param:
                break
            s.pieces += 1
            s.keys.add(result.as_numpy("engine_key").reshape(-1)[0].decode())
    except queue.Empty:
        s.error = "no response for 120 s"
    finally:
        client.stop_stream()
        client.close()
    s.ended = time.monotonic()
    return s


class Load:
    """Clients streaming back to back (ensemble and BLS) until stopped; RSS sampled meanwhile."""

    def __init__(self, served: Served, *, clients: int = 4) -> None:
        self.served = served
        self.streams: list[Stream] = []
        self.rss: list[tuple[float, int]] = []
        self._stop = threading.Event()
        models = ["ensemble", "ensemble", "tensorrt_llm_bls", "ensemble"]
        self._threads = [
            threading.Thread(target=self._client, args=(models[i % len(models)],), daemon=True)
            for i in range(clients)
        ]
        self._threads.append(threading.Thread(target=self._sample, daemon=True))

    def _client(self, model: str) -> None:
        while not self._stop.is_set():
            self.streams.append(stream_once(self.served.grpc_url, model))

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.rss.append((time.monotonic(), self.served.rss()))
            time.sleep(0.25)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        time.sleep(2)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=180)


def check_swap(served: Served, command: list[str], *, old: str, new: str) -> None:
    """Run an update command under load and check the issue's guarantees."""
    # a new model instance is created only for the new version: the serving one is updated in place
    instances = [
        f"ModelInstanceInitialize: {m}_0_0 " for m in ("preprocessing", "tensorrt_llm", "postprocessing")
    ]
    instances_before = [served.log.read_text().count(x) for x in instances]
    with Load(served) as load:
        before = time.monotonic()
        done = served.cli(*command)
        after = time.monotonic()
        time.sleep(6)  # new requests after the switch
        rss_after = served.rss()
    assert done.returncode == 0, done.stderr + done.stdout
    created = [served.log.read_text().count(x) - n for x, n in zip(instances, instances_before, strict=True)]
    assert created == [1, 1, 1], (
        f"model instances created during the update: {created} (a reload of the old one)"
    )
    failed = [s for s in load.streams if s.error]
    assert not failed, f"{len(failed)} of {len(load.streams)} streams failed: {failed[0].error}"
    mixed = [s for s in load.streams if len(s.keys) != 1]
    assert not mixed, f"{len(mixed)} streams carry {[sorted(s.keys) for s in mixed][:3]}"
    assert all(s.pieces > 0 for s in load.streams)
    early = [s for s in load.streams if s.started < before]
    late = [s for s in load.streams if s.started > after]
    assert early and {k for s in early for k in s.keys} == {old}
    assert late and {k for s in late for k in s.keys} == {new}, "new requests must go to the new version"
    assert {s.model for s in late} == {"ensemble", "tensorrt_llm_bls"}
    # two engines were resident during the swap; one is after it
    peak = max(rss for _, rss in load.rss)
    assert peak - rss_after > 150 * MiB, f"RSS peak {peak / MiB:.0f} MiB, after {rss_after / MiB:.0f} MiB"


SMOKES = 40  # smoke prompts before the unload; the leak they caused showed within 40 here, not within 5


def test_smoke_prompts_leave_nothing_that_keeps_their_version_loaded(served: Served, cpu_engine: Any) -> None:
    """The smoke gate's requests end so that Triton can unload the version they ran on.

    It once cancelled its stream after the final response; Triton 2.51's gRPC frontend then
    leaks the stream's state, which holds the model: the version stayed UNLOADING forever and
    ``repo rollback`` waited out its drain (the hang that got this work reverted).
    """
    from triton_llm.launch.update import TritonControl
    from triton_llm.repository.golden import read_golden

    golden = read_golden(cpu_engine.engine_dir)
    assert golden is not None
    control = TritonControl(served.grpc_url)
    try:
        for _ in range(SMOKES):
            assert control.generate_ids(1, golden) == golden["output_ids"]
        control.client.unload_model("tensorrt_llm")
        released = control.wait_released(("tensorrt_llm",), 1, timeout=60)
        left = control.states().get(("tensorrt_llm", 1))
    finally:
        control.load("tensorrt_llm")  # version 1 serves again for the tests below
        control.close()
    assert released, f"tensorrt_llm version 1 is still {left} 60 s after its unload"
    assert stream_once(served.grpc_url, "ensemble").keys == {cpu_engine.key}


def test_update_under_load_loses_no_request_and_mixes_no_stream(served: Served, engines: Engines) -> None:
    check_swap(served, ["repo", "update", "--key", engines.b], old=engines.a, new=engines.b)
    state = served.state()
    assert state["serving"] == 2 and state["loaded"] == [2]
    assert state["versions"]["2"]["engine_key"] == engines.b


@pytest.mark.parametrize(
    ("which", "code", "reason"),
    [
        ("corrupt", 1, "sha256 mismatch"),
        ("wrong_tp", 2, "world size 3"),
        ("smoke_fails", 1, "smoke gate"),
    ],
)
def test_a_bad_new_version_is_refused_and_the_old_one_keeps_serving(
    served: Served, engines: Engines, which: str, code: int, reason: str
) -> None:
    before = served.state()
    with Load(served, clients=2) as load:
        done = served.cli("repo", "update", "--key", getattr(engines, which))
    assert done.returncode == code, done.stderr + done.stdout
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert reason in line, done.stderr
    assert not [s for s in load.streams if s.error], [s.error for s in load.streams if s.error][:3]
    assert {k for s in load.streams for k in s.keys} == {engines.b}
    after = served.state()
    assert (after["serving"], after["loaded"], sorted(after["versions"])) == (
        before["serving"],
        before["loaded"],
        sorted(before["versions"]),
    )
    assert stream_once(served.grpc_url, "ensemble").keys == {engines.b}


def test_rollback_under_load_restores_the_previous_engine(served: Served, engines: Engines) -> None:
    check_swap(served, ["repo", "rollback"], old=engines.b, new=engines.a)
    state = served.state()
    assert state["serving"] == 1 and state["loaded"] == [1] and state["history"] == [1, 2, 1]


def _sync(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITON_LLM_")}
    env.update(TRITON_LLM_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "triton_llm.cli", "repo", "sync", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_sync_converges_replicas_to_the_same_versions(
    engines: Engines, cpu_engine_cache: Path, tmp_path: Path
) -> None:
    one, two = tmp_path / "replica-1", tmp_path / "replica-2"
    done = _sync(cpu_engine_cache, "--key", engines.a, "--key", engines.b, "--repo", str(one))
    assert done.returncode == 0, done.stderr
    state = json.loads((one / "triton-llm-versions.json").read_text())
    assert (state["serving"], state["loaded"]) == (2, [2])
    assert [state["versions"][v]["engine_key"] for v in ("1", "2")] == [engines.a, engines.b]
    # the other replica converges from the first one's state file: the same files, byte for byte
    done = _sync(cpu_engine_cache, "--from", str(one / "triton-llm-versions.json"), "--repo", str(two))
    assert done.returncode == 0, done.stderr

    def tree(root: Path) -> dict[str, bytes]:
        # the state file records when each version was written; bytecode records its source's path
        files = [p for p in root.rglob("*") if p.is_file() and p.name != "triton-llm-versions.json"]
        return {str(p.relative_to(root)): p.read_bytes() for p in files if "__pycache__" not in p.parts}

    assert tree(one) == tree(two)
    # syncing again writes nothing; a repository that diverged is an error naming the fix
    assert _sync(cpu_engine_cache, "--key", engines.a, "--key", engines.b, "--repo", str(one)).returncode == 0
    assert tree(one) == tree(two)
    diverged = _sync(cpu_engine_cache, "--key", engines.b, "--repo", str(one))
    assert (
        diverged.returncode == 2
        and "diverged" in diverged.stderr
        and "remove the repository" in diverged.stderr
    )
    # a corrupt engine is never written into a repository
    corrupt = _sync(cpu_engine_cache, "--key", engines.corrupt, "--repo", str(tmp_path / "replica-3"))
    assert corrupt.returncode == 1 and "sha256 mismatch" in corrupt.stderr
    assert not (tmp_path / "replica-3" / "tensorrt_llm").exists()
