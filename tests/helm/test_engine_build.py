"""The engine-build Job and the serving pods' wait for it, run for real with the shell the images use.

``triton-llm`` and ``sleep`` are stand-ins on PATH (the commands' own logic is the chart's shell), so each
case runs in well under a second.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helm._render import CI_DIR, container, helm_template, pod_specs

KEY = "d5d3695901ac0579a15ca75aeb2f72d4108d331fcde96f35e6cc7e0b316b8814"  # ci/autoscaling-values.yaml
FAKE = """#!/bin/sh
# triton-llm stand-in: logs its argv; `engine build` prints the CLI's result line
echo "$*" >> "$FAKE_DIR/calls"
case "$1 $2" in
  "engine build")
    echo "checkpoint: 0123 (built)"; echo "engine H100-SXM: $FAKE_KEY (built)"; exit "${FAKE_RC:-0}" ;;
  "engine show") [ -e "$FAKE_DIR/published" ] || { echo "error: no entry '$3'" >&2; exit 2; } ;;
esac
"""
FAKE_SLEEP = '#!/bin/sh\ntouch "$FAKE_DIR/published"\n'  # the Job publishes while the pod sleeps


@pytest.fixture(scope="module")
def build_values(helm):
    return helm_template(helm, values_files=[CI_DIR / "autoscaling-values.yaml"])


def _run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    for name, text in (("triton-llm", FAKE), ("sleep", FAKE_SLEEP)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    run_env = {
        "PATH": f"{fake}:{os.environ['PATH']}",
        "FAKE_DIR": str(tmp_path),
        "TMPDIR": str(tmp_path),
        **env,
    }
    assert argv[0] == "sh"
    return subprocess.run(["/bin/sh", *argv[1:]], capture_output=True, text=True, env=run_env, timeout=30)


def test_the_job_builds_at_the_charts_parallelism_and_checks_it_published_engine_key(
    build_values, tmp_path
) -> None:
    job = build_values.one("Job")
    argv = job["spec"]["template"]["spec"]["containers"][0]["command"]
    ok = _run(argv, tmp_path, FAKE_KEY=KEY)
    assert ok.returncode == 0, ok.stderr
    call = (tmp_path / "calls").read_text().split()
    assert call[:3] == ["engine", "build", "llama-3.1-70b-instruct"]
    assert " ".join(call).count("--set parallelism.tp=16 --set parallelism.pp=1") == 1
    other = _run(argv, tmp_path, FAKE_KEY="ff" * 32)
    assert other.returncode == 1 and f"did not publish engine.key {KEY}" in other.stderr
    failed = _run(argv, tmp_path, FAKE_KEY=KEY, FAKE_RC="3")
    assert failed.returncode == 3  # the build's own failure, not masked by tee


def test_the_job_gets_the_hf_token_from_a_secret(helm) -> None:
    r = helm_template(
        helm,
        values_files=[CI_DIR / "autoscaling-values.yaml"],
        set_values={"engine.build.hfToken.secretName": "hf"},
    )
    env = {e["name"]: e for e in r.one("Job")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "HF_TOKEN"}}
    assert "HF_TOKEN" not in {e["name"] for e in container(pod_specs(r)["leader"])["env"]}


def test_serving_pods_wait_for_the_build_inside_one_init_container_run(build_values, tmp_path) -> None:
    pull = container(pod_specs(build_values)["worker"], "engine-pull")["command"]
    done = _run(pull, tmp_path)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0].startswith(f"engine show {KEY} --store s3://models/engines")
    assert calls[-1].startswith(f"engine pull {KEY} --dest ")
    assert "waiting for the engine-build Job to publish" in done.stdout


def test_without_a_build_job_the_pull_is_the_plain_command(render_ci) -> None:
    pull = container(pod_specs(render_ci("lws-roce-values.yaml"))["worker"], "engine-pull")["command"]
    assert pull[:3] == ["triton-llm", "engine", "pull"]
