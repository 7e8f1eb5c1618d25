"""``triton-llm rollout`` through the real CLI, the official Kubernetes client and a stub API server.

The stub (``_apiserver.py``) serves the LeaderWorkerSet the chart really renders; the CLI runs in a fresh
process like a user's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helm._render import NAMESPACE
from tests.rollout._apiserver import ApiState
from tests.rollout.conftest import NEW, OLD, RELEASE, chart_lws
from triton_llm.rollout import lws_state, plan_rollout


def rollout(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "triton_llm.cli", "rollout", "--release", RELEASE, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_dry_run_prints_every_step_of_the_plan_and_changes_nothing(
    helm: Path, api: tuple[ApiState, Path]
) -> None:
    state, kubeconfig = api
    lws = chart_lws(helm, key=OLD, replicas=2, surge=1)
    state.lws.append(lws)
    done = rollout(
        "--key", NEW, "--kubeconfig", str(kubeconfig), "--dry-run", "--chart", "oci://r/triton-llm"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"release {RELEASE} (LeaderWorkerSet {NAMESPACE}/{lws['metadata']['name']}, 2 group(s), maxSurge 1): "
        f"{OLD[:12]} -> {NEW[:12]}"
    )
    expected = plan_rollout(
        lws_state(lws),
        NEW,
        release=RELEASE,
        chart="oci://r/triton-llm",
        kube_args=["--kubeconfig", str(kubeconfig)],
    )
    assert lines[1:] == expected.describe()
    assert len(lines[1:]) == 10  # 3 upgrades + 3 gates of 2 steps + the surge removal
    assert lines[1].startswith(
        f"1. helm upgrade {RELEASE} oci://r/triton-llm --namespace {NAMESPACE} --reuse-values"
    )
    # Only reads: the LWS list (by release label) and nothing else.
    assert {(m, p) for m, p, _ in state.requests} == {
        ("GET", f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{NAMESPACE}/leaderworkersets")
    }


def test_dry_run_undo_returns_to_the_key_the_chart_recorded(helm: Path, api: tuple[ApiState, Path]) -> None:
    state, kubeconfig = api
    state.lws.append(chart_lws(helm, key=NEW, previous=OLD))
    done = rollout("--undo", "--kubeconfig", str(kubeconfig), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].endswith(f"{NEW[:12]} -> {OLD[:12]}")
    assert f"engine.key={OLD} --set-string engine.previousKey={NEW}" in done.stdout


def test_a_release_already_on_the_key_needs_nothing(helm: Path, api: tuple[ApiState, Path]) -> None:
    state, kubeconfig = api
    state.lws.append(chart_lws(helm, key=NEW, previous=OLD))
    done = rollout("--key", NEW, "--kubeconfig", str(kubeconfig))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"every group already serves {NEW}: nothing to do"


def test_no_leaderworkerset_for_the_release_is_a_usage_error_naming_the_flags(
    api: tuple[ApiState, Path],
) -> None:
    _, kubeconfig = api
    done = rollout("--key", NEW, "--kubeconfig", str(kubeconfig), "--namespace", "elsewhere")
    assert done.returncode == 2
    assert f"release '{RELEASE}' has 0 LeaderWorkerSets in namespace elsewhere" in done.stderr
    assert "--release and --namespace" in done.stderr


def test_one_group_without_surge_is_refused_before_anything_runs(
    helm: Path, api: tuple[ApiState, Path]
) -> None:
    state, kubeconfig = api
    state.lws.append(chart_lws(helm, key=OLD, replicas=1, surge=0))
    done = rollout("--key", NEW, "--kubeconfig", str(kubeconfig))
    assert done.returncode == 2
    assert "one group and maxSurge=0" in done.stderr
    assert all(m == "GET" for m, _, _ in state.requests)


def test_a_bad_kubeconfig_names_the_flag(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    done = rollout("--key", NEW, "--kubeconfig", str(missing))
    assert done.returncode == 2
    assert f"kubeconfig {missing}" in done.stderr


def test_without_the_k8s_extra_the_command_names_the_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['kubernetes'] = None; from triton_llm.cli import main; "
        f"sys.exit(main(['rollout', '--key', '{NEW}', '--dry-run']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "the Kubernetes client is not installed (pip install 'triton-llm[k8s]')" in done.stderr
