"""``triton-llm doctor``: report this machine's GPU SKU, Triton install and TensorRT-LLM toolchain."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the GPU, the Triton install and the TensorRT-LLM toolchain",
        description="Report the GPU SKU builds on this machine target (exact nvidia-smi product name), "
        "the Triton install (backends, python stub, versions) and the TensorRT-LLM toolchain: the record "
        "cache keys use and what this machine runs. Exits 1 on a problem; GPU and toolchain findings are "
        "problems only where TensorRT-LLM is installed, warnings elsewhere.",
        epilog="examples:\n  triton-llm doctor --fix\n  triton-llm doctor --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--fix", action="store_true", help="install the python backend stub if missing")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object (gpu, triton, toolchain, problems)"
    )
    p.set_defaults(func=run)


def _report(*, fix: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The doctor report and, for text output, what --fix changed.

    GPU and toolchain findings are problems only where TensorRT-LLM is installed (a machine that
    builds or serves GPU engines); elsewhere the cpu backend is used and they are warnings.
    """
    from triton_llm.engine.backends.trtllm import TrtllmBackend
    from triton_llm.engine.gpus import local_gpu
    from triton_llm.errors import TritonLLMError
    from triton_llm.launch.tritonserver import describe_triton, ensure_python_backend, find_triton

    problems: list[str] = []
    gpu_findings: list[str] = []
    notes: list[str] = []
    gpu = None
    try:
        sku = local_gpu()
        gpu = sku.name if sku else None
    except TritonLLMError as e:
        gpu_findings.append(str(e))
    triton = None
    try:
        install = find_triton()
        if fix and ensure_python_backend(install):
            notes.append(f"python backend stub: installed at {install.python_stub}")
        triton = describe_triton(install, environ=os.environ)
        if not triton["python_stub"]:
            problems.append("python backend stub missing (run `triton-llm doctor --fix`)")
    except TritonLLMError as e:
        problems.append(str(e))
    backend = TrtllmBackend(environ=os.environ)
    running = backend.installed_toolchain()
    mismatches = backend.toolchain_mismatches()
    gpu_findings += [f"toolchain {m}" for m in mismatches] if running["tensorrt_llm"] is not None else []
    warnings: list[str] = []
    (problems if running["tensorrt_llm"] is not None else warnings).extend(gpu_findings)
    toolchain = {"record": backend.toolchain_versions(), "running": running, "mismatches": mismatches}
    result = {
        "gpu": gpu,
        "triton": triton,
        "toolchain": toolchain,
        "problems": problems,
        "warnings": warnings,
    }
    return result, notes


def run(args: argparse.Namespace) -> int:
    result, notes = _report(fix=args.fix)
    if args.json:
        print(json.dumps(result, indent=1))
        return 1 if result["problems"] else 0
    for line in notes:
        print(line)
    print(f"gpu: {result['gpu'] or 'none detected'}")
    triton = result["triton"]
    if triton is not None:
        print(f"tritonserver: {triton['binary']} (backends: {', '.join(triton['backends']) or 'none'})")
        print(f"python backend stub: {'present' if triton['python_stub'] else 'missing'}")
    toolchain = result["toolchain"]
    print("toolchain record: " + ", ".join(f"{k} {v}" for k, v in toolchain["record"].items()))
    print("toolchain running: " + ", ".join(f"{k} {v or '-'}" for k, v in toolchain["running"].items()))
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    for problem in result["problems"]:
        print(f"problem: {problem}")
    return 1 if result["problems"] else 0
