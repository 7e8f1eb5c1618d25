"""Hot swap on one running server (``repo update``, ``repo rollback``) and repository sync (``repo sync``).

An update of a server on a versioned repository (:mod:`triton_llm.repository.versions`), serving
version N:

1. restore and verify the new engine (the store's sha256: a flipped byte is refused), check it
   fits the server (world size) and has a golden answer;
2. write version N+1 and load it beside N (Triton's explicit model control; N is updated in
   place, not reloaded, because only ``version_policy`` changed);
3. smoke gate: the golden prompt through N+1's ``preprocessing`` and ``tensorrt_llm``, which must
   generate exactly the golden ids;
4. switch: the routers (``ensemble``, ``tensorrt_llm_bls``) are rewritten to call N+1 and
   reloaded; requests already running keep the router and models they started with;
5. unload N: Triton releases it, and it is destroyed once its last stream has finished; the
   command waits for that (``drain_timeout``).

A failure in 2-4 puts everything back (N loaded and routed, N+1 unloaded and forgotten) and
raises an error naming the reason. ``rollback`` runs steps 2-5 for the version that served
before, which is still on disk.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from triton_llm.errors import (
    IncompatibleError,
    NotFoundError,
    ServeError,
    ServerUnavailableError,
    UsageError,
)

if TYPE_CHECKING:
    from triton_llm.engine.local import LocalEngine
    from triton_llm.repository.versions import RepositoryState
    from triton_llm.settings import Settings

Say = Callable[[str], None]
LOCK_FILE = ".triton-llm-update.lock"  # at the repository root: Triton takes only directories for models


@dataclass(frozen=True)
class Target:
    """The server an update drives and the repository it serves."""

    grpc_url: str
    repo: Path
    world_size: int = 1


@dataclass
class UpdateReport:
    """What an update did and how long each phase took (seconds)."""

    old_version: int
    new_version: int
    engine_key: str
    phases: dict[str, float] = field(default_factory=dict)
    drained: bool = True


def resolve_target(settings: Settings, *, url: str | None, repo: Path | None) -> Target:
    """The server to update: one started by ``serve`` (found by ``url`` or alone), or ``url`` + ``repo``.

    Raises:
        UsageError: a server not started by ``serve`` without ``--repo``, or ``--repo`` without ``--url``.
        NotFoundError: no server is running and no ``--url`` was given.
    """
    from triton_llm.launch.serving import find_server

    if url is None and repo is not None:
        raise UsageError("--repo names another server's repository: pass its --url too")
    record = find_server(settings, url=url)
    if record is not None:
        if repo is not None and Path(repo).resolve() != Path(record.repo).resolve():
            raise UsageError(f"the server at {url} serves {record.repo}, not {repo}")
        return Target(grpc_url=record.grpc_url, repo=Path(record.repo), world_size=record.world_size)
    if repo is None:
        raise UsageError(
            f"{url} is not a server started by `triton-llm serve`: pass --repo DIR, the repository it serves"
        )
    return Target(grpc_url=str(url).split("://", 1)[-1], repo=Path(repo).absolute())


class TritonControl:
    """Triton's model-repository extension over gRPC: load, index, and the smoke inference."""

    def __init__(self, url: str, *, timeout: float = 600.0) -> None:
        import tritonclient.grpc as grpcclient

        self.url = url
        self.timeout = timeout
        self.client = grpcclient.InferenceServerClient(url)
        try:
            live = self.client.is_server_live(client_timeout=10)
        except Exception as e:  # tritonclient raises its own exception type for every transport error
            raise ServerUnavailableError(f"no Triton server answers at {url}: {e}") from e
        if not live:
            raise ServerUnavailableError(f"the Triton server at {url} is not live")

    def close(self) -> None:
        self.client.close()

    def load(self, model: str) -> None:
        """(Re)load ``model`` from its config.pbtxt on disk; returns when Triton has finished.

        Raises:
            ServeError: Triton's answer when the load failed.
        """
        from tritonclient.utils import InferenceServerException

        try:
            self.client.load_model(model, client_timeout=self.timeout)
        except InferenceServerException as e:
            raise ServeError(f"loading {model} failed: {e.message()}") from e

    def states(self) -> dict[tuple[str, int], str]:
        """(model, version) -> state (READY, UNLOADING, UNAVAILABLE, ...) of every model Triton knows."""
        index = self.client.get_model_repository_index(as_json=True, client_timeout=30)
        return {
            (m["name"], int(m["version"])): m.get("state", "")
            for m in index.get("models", [])
            if m.get("version")
        }

    def wait_released(self, models: tuple[str, ...], version: int, *, timeout: float) -> bool:
        """Wait until no model in ``models`` has ``version`` loaded or unloading; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            busy = [m for m in models if states.get((m, version)) in ("READY", "UNLOADING", "LOADING")]
            if not busy:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def generate_ids(self, version: int, golden: dict[str, Any], *, timeout: float = 120.0) -> list[int]:
        """The golden prompt through ``version`` of preprocessing and tensorrt_llm: the generated ids.

        Raises:
            ServeError: a model answered with an error, or nothing came back within ``timeout``.
        """
        import numpy as np
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        def tensor(name: str, value: Any, dtype: str) -> Any:
            t = grpcclient.InferInput(name, list(value.shape), dtype)
            t.set_data_from_numpy(value)
            return t

        try:
            pre = self.client.infer(
                "preprocessing",
                [
                    tensor("QUERY", np.array([[golden["prompt"].encode()]], dtype=object), "BYTES"),
                    tensor("REQUEST_OUTPUT_LEN", np.array([[golden["max_tokens"]]], dtype=np.int32), "INT32"),
                    tensor("APPLY_CHAT_TEMPLATE", np.array([[golden["chat_template"]]], dtype=bool), "BOOL"),
                ],
                model_version=str(version),
                client_timeout=timeout,
            )
        except InferenceServerException as e:
            raise ServeError(f"smoke prompt: preprocessing version {version} failed: {e.message()}") from e
        input_ids = pre.as_numpy("INPUT_ID").reshape(-1).astype(np.int32)
        if [int(x) for x in input_ids] != golden["input_ids"]:
            raise ServeError(
                f"smoke gate: preprocessing version {version} tokenizes the golden prompt differently "
                f"({len(input_ids)} ids, golden {len(golden['input_ids'])})"
            )
        results: queue.Queue[tuple[Any, Any]] = queue.Queue()
        self.client.start_stream(callback=lambda result, error: results.put((result, error)))
        finished = False
        try:
            self.client.async_stream_infer(
                "tensorrt_llm",
                [
                    tensor("input_ids", input_ids.reshape(1, -1), "INT32"),
                    tensor("input_lengths", np.array([[input_ids.size]], dtype=np.int32), "INT32"),
                    tensor(
                        "request_output_len", pre.as_numpy("REQUEST_OUTPUT_LEN").astype(np.int32), "INT32"
                    ),
                    tensor("end_id", pre.as_numpy("OUT_END_ID").astype(np.int32), "INT32"),
                    tensor("pad_id", pre.as_numpy("OUT_PAD_ID").astype(np.int32), "INT32"),
                    tensor("streaming", np.array([[False]], dtype=bool), "BOOL"),
                ],
                model_version=str(version),
                request_id="triton-llm-smoke",
                enable_empty_final_response=True,
            )
            try:
                result, error = results.get(timeout=timeout)
            except queue.Empty:
                raise ServeError(  # noqa: B904 - the timeout is the whole story
                    f"smoke prompt: tensorrt_llm version {version} answered nothing in {timeout:.0f}s"
                )
            finished = error is not None or _is_final(result)
        finally:
            # Cancel only a request that is still running. Triton 2.51's gRPC frontend leaks the
            # state of a stream cancelled after its final response, and with it a reference to the
            # model: that version would stay UNLOADING forever (triton_model_updates.json).
            self.client.stop_stream(cancel_requests=not finished)
        if error is not None:
            raise ServeError(f"smoke prompt: tensorrt_llm version {version} failed: {error}")
        ids = result.as_numpy("output_ids").reshape(-1)
        length = int(result.as_numpy("sequence_length").reshape(-1)[0])
        out = [int(x) for x in ids[:length]]
        prefix = golden["input_ids"]
        return out[len(prefix) :] if out[: len(prefix)] == prefix and len(out) > len(prefix) else out


def _is_final(result: Any) -> bool:
    """Whether a streamed response carries Triton's final flag (``enable_empty_final_response``)."""
    param = result.get_response().parameters.get("triton_final_response")
    return param is not None and bool(param.bool_param)


@contextlib.contextmanager
def repository_lock(repo: Path) -> Iterator[None]:
    """One update, rollback or sync of a repository at a time.

    Raises:
        UsageError: another one holds the lock.
    """
    import fcntl

    path = repo / LOCK_FILE
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"another update, rollback or sync of {repo} is running", path=str(path)
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the swap ----------------------------------------------------------------------------------


def _restore(key: str, *, settings: Settings, say: Say) -> LocalEngine:
    """Restore and verify an engine (IntegrityError: a corrupt file is refused, never served)."""
    from triton_llm.engine.local import restore_engine

    say(f"engine {key[:12]}: restoring and verifying (sha256)")
    return restore_engine(key, settings=settings)


def _check_fits(engine: LocalEngine, state: RepositoryState, target: Target) -> dict[str, Any]:
    """Refuse an engine that cannot serve beside the current version; returns its golden answer.

    Raises:
        IncompatibleError: another world size (tp*pp), or no golden answer.
    """
    from triton_llm.repository.golden import read_golden
    from triton_llm.repository.versions import parse_parameters

    assert state.serving is not None  # a versioned repository always has one
    current = parse_parameters(state.record(state.serving).configs["tensorrt_llm"])
    serving_world = int(current.get("world_size") or target.world_size)
    world = engine.recipe.parallelism.world_size
    if world != serving_world or target.world_size > 1:
        raise IncompatibleError(
            f"engine {engine.key[:12]} needs world size {world} (tp={engine.recipe.parallelism.tp}, "
            f"pp={engine.recipe.parallelism.pp}); the server runs world size {serving_world} on "
            f"{target.world_size} rank(s): a single server hot-swaps single-rank engines only",
            key=engine.key,
            hint="build the engine with the server's parallelism, or replace the group (triton-llm rollout)",
        )
    golden = read_golden(engine.engine_dir)
    if golden is None:
        raise IncompatibleError(
            f"engine {engine.key[:12]} has no golden answer, so the smoke gate cannot check it",
            key=engine.key,
            hint="rebuild it with this version of triton-llm (`triton-llm engine build RECIPE --force`)",
        )
    return golden


def _apply(control: TritonControl, repo: Path, state: RepositoryState, models: tuple[str, ...]) -> None:
    from triton_llm.repository.versions import write_configs, write_state

    write_configs(repo, state)
    write_state(repo, state)
    for model in models:
        control.load(model)


def swap(
    target: Target,
    new_version: int,
    *,
    golden: dict[str, Any],
    drain_timeout: float = 600.0,
    say: Say = print,
    fresh: bool = False,
) -> UpdateReport:
    """Load ``new_version`` beside the serving one, gate it, switch to it, unload the old one.

    ``fresh`` marks a version written for this update: it is forgotten again when refused.

    Raises:
        ServeError: the new version failed to load, failed the smoke gate or could not be
            switched to; the old version keeps serving.
    """
    from triton_llm.repository.versions import ROUTER_MODELS, VERSIONED_MODELS, read_state

    state = read_state(target.repo)
    if state is None or state.serving is None:
        raise NotFoundError(f"{target.repo} is not a versioned repository", path=str(target.repo))
    old = state.serving
    key = state.record(new_version).engine_key
    report = UpdateReport(old_version=old, new_version=new_version, engine_key=key)
    control = TritonControl(target.grpc_url)
    # tensorrt_llm first: preprocessing and postprocessing of N+1 are useless without it.
    order = ("tensorrt_llm", "preprocessing", "postprocessing")
    assert set(order) == set(VERSIONED_MODELS)
    try:
        start = time.monotonic()
        state.loaded = sorted({old, new_version})
        try:
            say(f"loading version {new_version} (engine {key[:12]}) beside version {old}")
            _apply(control, target.repo, state, order)
            report.phases["load"] = time.monotonic() - start
            mark = time.monotonic()
            say(f"smoke gate: {golden['prompt']!r} on version {new_version}")
            got = control.generate_ids(new_version, golden)
            if got != golden["output_ids"]:
                raise ServeError(_smoke_mismatch(new_version, key, got, golden["output_ids"]))
            report.phases["smoke"] = time.monotonic() - mark
            mark = time.monotonic()
            say(f"switching new requests to version {new_version}")
            state.serving = new_version
            state.history = [*state.history, new_version]
            _apply(control, target.repo, state, ROUTER_MODELS)
            report.phases["switch"] = time.monotonic() - mark
        except Exception as e:
            _revert(control, target.repo, old=old, new=new_version, fresh=fresh, say=say)
            if isinstance(e, ServeError):
                raise ServeError(f"{e.message}; version {old} keeps serving", hint=e.hint) from e
            raise
        mark = time.monotonic()
        say(f"unloading version {old} (its running streams finish first)")
        state.loaded = [new_version]
        _apply(control, target.repo, state, order)
        report.drained = control.wait_released(VERSIONED_MODELS, old, timeout=drain_timeout)
        report.phases["drain"] = time.monotonic() - mark
        report.phases["total"] = time.monotonic() - start
        if not report.drained:
            say(
                f"warning: version {old} still has streams after {drain_timeout:.0f}s; "
                "Triton unloads it when they end"
            )
        return report
    finally:
        control.close()


def _smoke_mismatch(version: int, key: str, got: list[int], golden: list[int]) -> str:
    first = next(
        (i for i, (a, b) in enumerate(zip(got, golden, strict=False)) if a != b), min(len(got), len(golden))
    )
    return (
        f"smoke gate: version {version} (engine {key[:12]}) generated {len(got)} ids that differ from the "
        f"{len(golden)} of the golden answer recorded at build time (first difference at token {first})"
    )


def _revert(control: TritonControl, repo: Path, *, old: int, new: int, fresh: bool, say: Say) -> None:
    """Put the repository and the server back on ``old`` alone (best effort: the error that got us
    here is what the user must see)."""
    from triton_llm.repository.versions import (
        ROUTER_MODELS,
        VERSIONED_MODELS,
        drop_version,
        read_state,
        write_configs,
    )

    state = read_state(repo)
    if state is None:
        return
    say(f"refused: restoring version {old}")
    state.serving = old
    state.history = [v for v in state.history if v != new] or [old]
    state.loaded = [old]
    try:
        routers = [m for m in write_configs(repo, state) if m in ROUTER_MODELS]
        _apply(control, repo, state, (*routers, *VERSIONED_MODELS))  # unloads the new version
    except ServeError as e:
        say(f"warning: while restoring version {old}: {e}")
    if fresh:
        drop_version(repo, state, new)


def update(
    target: Target, key: str, *, settings: Settings, drain_timeout: float = 600.0, say: Say = print
) -> UpdateReport:
    """``repo update``: put engine ``key`` into the repository as version N+1 and swap to it.

    Raises:
        IntegrityError: the engine's files do not match its manifest (corrupt).
        NotFoundError: no such engine, or the repository is not versioned.
        IncompatibleError: the engine does not fit the server (world size, configs, no golden answer).
        ServeError: N+1 failed to load, the smoke gate or the switch; N keeps serving.
    """
    from triton_llm.launch.prepare import engine_files
    from triton_llm.repository.versions import add_version, drop_version, read_state

    with repository_lock(target.repo):
        state = read_state(target.repo)
        if state is None or state.serving is None:
            raise NotFoundError(
                f"{target.repo} is not a versioned repository",
                path=str(target.repo),
                hint="serve it with `triton-llm serve`, or write it with `triton-llm repo sync`",
            )
        engine = _restore(key, settings=settings, say=say)
        golden = _check_fits(engine, state, target)
        _, record = add_version(target.repo, engine_files(engine), engine_key=engine.key)
        try:
            return swap(
                target, record.version, golden=golden, drain_timeout=drain_timeout, say=say, fresh=True
            )
        except ServerUnavailableError:  # nothing was loaded: forget the version written for it
            state = read_state(target.repo)
            if state is not None and state.serving != record.version:
                drop_version(target.repo, state, record.version)
            raise


def rollback(
    target: Target, *, settings: Settings, drain_timeout: float = 600.0, say: Say = print
) -> UpdateReport:
    """``repo rollback``: swap back to the version that served before the current one.

    Raises:
        NotFoundError: nothing to roll back to.
        see :func:`update`.
    """
    from triton_llm.repository.versions import read_state

    state = read_state(target.repo)
    previous = state.previous_serving() if state is not None else None
    if state is None or previous is None:
        raise NotFoundError(
            f"{target.repo} has no earlier serving version to roll back to", path=str(target.repo)
        )
    with repository_lock(target.repo):
        engine = _restore(state.record(previous).engine_key, settings=settings, say=say)
        golden = _check_fits(engine, state, target)
        return swap(target, previous, golden=golden, drain_timeout=drain_timeout, say=say)


# --- sync --------------------------------------------------------------------------------------


def desired_versions(*, keys: list[str], state_file: Path | None) -> tuple[dict[int, str], int]:
    """The versions (number -> engine key) and serving version a sync converges to.

    From ``--key`` flags (versions 1..n, the last serving) or a ``triton-llm-versions.json``
    (another replica's, or a desired-state file with the same shape).

    Raises:
        UsageError: neither or both given; a state file that does not parse.
    """
    if bool(keys) == (state_file is not None):
        raise UsageError("pass --key KEY (repeatable, the last one serves) or --from STATE_FILE")
    if state_file is None:
        return {i + 1: key for i, key in enumerate(keys)}, len(keys)
    from pydantic import ValidationError

    from triton_llm.repository.versions import RepositoryState

    try:
        state = RepositoryState.model_validate_json(Path(state_file).read_text())
    except (OSError, ValidationError) as e:
        raise UsageError(
            f"--from {state_file}: not a triton-llm versions file ({e})", path=str(state_file)
        ) from e
    if state.serving is None:
        raise UsageError(f"--from {state_file}: no serving version", path=str(state_file))
    return {v: r.engine_key for v, r in state.versions.items()}, state.serving


def sync(
    repo: Path, versions: dict[int, str], serving: int, *, settings: Settings, say: Say = print
) -> list[int]:
    """Converge ``repo`` to exactly these versions, each restored and verified from the store.

    Versions already present with the same key are kept; missing ones are written; a version
    number that holds another key, or an extra version, means the repository diverged and is an
    error (remove it and sync again). The serving version is set in the configs; a server already
    running on the repository picks a change up only through ``repo update``.

    Returns:
        The versions written.

    Raises:
        UsageError: the serving version is not among the versions; the repository diverged.
        IntegrityError, NotFoundError: see :func:`triton_llm.engine.local.restore_engine`.
    """
    if serving not in versions:
        raise UsageError(f"serving version {serving} is not among the versions {sorted(versions)}")
    if sorted(versions) != list(range(1, len(versions) + 1)):
        raise UsageError(f"versions must be numbered 1..n without gaps (got {sorted(versions)})")
    repo = repo.absolute()
    repo.mkdir(parents=True, exist_ok=True)
    with repository_lock(repo):
        return _sync_locked(repo, versions, serving, settings=settings, say=say)


def _sync_locked(
    repo: Path, versions: dict[int, str], serving: int, *, settings: Settings, say: Say
) -> list[int]:
    from triton_llm.launch.prepare import engine_files
    from triton_llm.repository.versions import add_version, read_state, write_configs, write_state

    state = read_state(repo)
    if state is None and any(p.name != LOCK_FILE for p in repo.iterdir()):
        raise UsageError(f"{repo} is not empty and not a versioned repository", path=str(repo))
    existing = state.versions if state is not None else {}
    diverged = [v for v, r in existing.items() if versions.get(v) != r.engine_key]
    if diverged:
        raise UsageError(
            f"{repo} diverged from the desired versions at version(s) {diverged}",
            path=str(repo),
            hint="remove the repository and sync again",
        )
    written = []
    for version in sorted(versions):
        if version in existing:
            continue
        engine = _restore(versions[version], settings=settings, say=say)
        state, record = add_version(repo, engine_files(engine), engine_key=engine.key)
        assert record.version == version  # numbered 1..n, written in order
        written.append(version)
        say(f"version {version}: engine {engine.key[:12]}")
    assert state is not None
    if state.serving != serving or state.loaded != [serving]:
        state.serving, state.loaded = serving, [serving]
        if not state.history or state.history[-1] != serving:
            state.history = [*state.history, serving]
        write_configs(repo, state)
        write_state(repo, state)
    say(f"{repo}: versions {sorted(versions)}, serving {serving}")
    return written
