"""End whatever an MPI group left behind on this host: ranks, python-backend stubs, /dev/shm regions.

Every rank (and every process it starts, e.g. ``triton_python_backend_stub``) inherits
``TRITONLLM_GROUP=<id>``; processes carrying it, or naming the group's shm prefix on their
command line, are ended. Run on remote hosts through the agent as
``python -m triton_llm.launch.cleanup <group-id> <shm-prefix>``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

GROUP_ENV = "TRITONLLM_GROUP"


@dataclass
class CleanupReport:
    """What a cleanup ended and removed."""

    killed: list[int] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def group_processes(group_id: str, *, shm_prefix: str = "", proc: Path = Path("/proc")) -> list[int]:
    """Pids of live processes in the group (marker variable, or the shm prefix in their command line)."""
    marker = f"{GROUP_ENV}={group_id}".encode()
    me = os.getpid()
    found: list[int] = []
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        environ = _read(entry / "environ").split(b"\0")
        cmdline = _read(entry / "cmdline")
        if marker in environ or (shm_prefix and shm_prefix.encode() in cmdline):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    stat = _read(Path(f"/proc/{pid}/stat"))
    if not stat:
        return False
    return stat.rsplit(b")", 1)[-1].split()[0] != b"Z"  # zombies are already dead


def end_processes(pids: list[int], *, grace: float = 2.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the pids that were signalled."""
    signalled = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while any(_alive(p) for p in signalled) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in signalled:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return signalled


def remove_shm(prefix: str, *, shm_dir: Path = Path("/dev/shm")) -> list[str]:
    """Remove ``<shm_dir>/<prefix>*`` (files and directories); returns the names removed.

    An empty prefix removes nothing.
    """
    removed: list[str] = []
    if not prefix or not shm_dir.is_dir():
        return removed
    for p in shm_dir.glob(f"{prefix}*"):
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p.name)
        except FileNotFoundError:
            pass
    return removed


def cleanup_local(group_id: str, *, shm_prefix: str = "", grace: float = 2.0) -> CleanupReport:
    """End the group's processes on this host and remove its shm regions."""
    report = CleanupReport()
    for _ in range(3):  # a dying rank may still spawn or leave children; look again
        pids = group_processes(group_id, shm_prefix=shm_prefix)
        if not pids:
            break
        report.killed += end_processes(pids, grace=grace)
    report.removed = remove_shm(shm_prefix)
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m triton_llm.launch.cleanup GROUP_ID [SHM_PREFIX]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 2:
        print("usage: python -m triton_llm.launch.cleanup GROUP_ID [SHM_PREFIX]", file=sys.stderr)
        return 2
    report = cleanup_local(args[0], shm_prefix=args[1] if len(args) > 1 else "")
    ended, removed = len(report.killed), len(report.removed)
    print(f"cleanup {args[0]}: ended {ended} process(es), removed {removed} shm region(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
