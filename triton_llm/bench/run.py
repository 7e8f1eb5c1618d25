"""One bench run from flags to results: the orchestration the CLI and the tests call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from triton_llm.bench.drivers import DriverOptions, make_driver
from triton_llm.bench.load import Step
from triton_llm.bench.prompts import (
    LengthDist,
    Prompt,
    jsonl_prompts,
    load_tokenizer,
    synthetic_prompts,
    with_token_counts,
)
from triton_llm.bench.runner import BenchRun, run_sweep
from triton_llm.bench.slo import Bound
from triton_llm.bench.stats import StepSummary
from triton_llm.errors import UsageError

TRITON_METRICS_PORT = 8002


@dataclass(frozen=True)
class BenchConfig:
    """Everything one run needs; built once from the flags and validated there."""

    protocol: str
    options: DriverOptions
    steps: list[Step]
    input_len: LengthDist
    output_len: LengthDist
    prompts_file: Path | None = None
    tokenizer: str | None = None
    num_prompts: int = 100
    seed: int = 0
    slo: list[Bound] | None = None
    metrics_url: str | None = "auto"
    warmup: int = 0

    def settings(self) -> dict[str, Any]:
        """The run's settings as recorded in its JSON."""
        return {
            "protocol": self.protocol,
            "url": self.options.url,
            "model": self.options.model,
            "input_tokens": str(self.input_len) if self.prompts_file is None else None,
            "max_tokens": str(self.output_len),
            "prompts_file": str(self.prompts_file) if self.prompts_file else None,
            "tokenizer": self.tokenizer,
            "num_prompts": self.num_prompts,
            "seed": self.seed,
            "end_id": self.options.end_id,
            "chat_template": self.options.chat_template,
            "slo": [str(b) for b in self.slo or []],
            "warmup": self.warmup,
        }


def default_metrics_url(protocol: str, url: str) -> str | None:
    """Triton's metrics endpoint on the same host (port 8002) for the Triton protocols."""
    if protocol not in ("grpc", "http"):
        return None
    host = urlsplit(url if "://" in url else f"//{url}").hostname or "127.0.0.1"
    return f"http://{host}:{TRITON_METRICS_PORT}/metrics"


def server_tokenizer_dir(protocol: str, url: str) -> str | None:
    """The ``tokenizer_dir`` parameter of a Triton server's ``preprocessing`` model, if any.

    It is a path on the server's host: callers use it only when it exists here too.
    """
    from tritonclient.utils import InferenceServerException

    try:
        if protocol == "grpc":
            import tritonclient.grpc as grpcclient

            with grpcclient.InferenceServerClient(url) as client:
                config = client.get_model_config("preprocessing", as_json=True).get("config", {})
        elif protocol == "http":
            import tritonclient.http as httpclient

            with httpclient.InferenceServerClient(url.split("://")[-1]) as client:
                config = client.get_model_config("preprocessing")
        else:
            return None
    except (InferenceServerException, OSError):
        return None
    value = (config.get("parameters", {}).get("tokenizer_dir") or {}).get("string_value")
    return value or None


def build_prompts(
    config: BenchConfig, tokenizer_dir: str | None, file_prompts: list[Prompt] | None
) -> list[Prompt]:
    """The prompt pool: the JSONL file's prompts (token counts when a tokenizer is known), or
    ``num_prompts`` synthetic ones.

    Raises:
        UsageError: synthetic prompts without a tokenizer, or a tokenizer that cannot be loaded.
    """
    name = config.tokenizer or tokenizer_dir
    if file_prompts is not None:
        return with_token_counts(file_prompts, load_tokenizer(name)) if name else file_prompts
    if not name:
        raise UsageError(
            "synthetic prompts need the model's tokenizer and the server did not name one",
            field="--tokenizer",
            hint="pass --tokenizer DIR (a Hugging Face tokenizer folder) or --prompts FILE.jsonl",
        )
    return synthetic_prompts(
        load_tokenizer(name),
        count=config.num_prompts,
        input_len=config.input_len,
        output_len=config.output_len,
        seed=config.seed,
    )


async def run_bench(config: BenchConfig, *, on_step: Any = None) -> BenchRun:
    """Check the endpoint, build the prompts, run the sweep, close the driver.

    Raises:
        ServerUnavailableError: the endpoint or model is not ready (before any load is sent).
        UsageError: bad prompt input or a model the server does not serve.
    """
    file_prompts = None
    if config.prompts_file is not None:  # a bad file is reported before the server is contacted
        file_prompts = jsonl_prompts(config.prompts_file, output_len=config.output_len, seed=config.seed)
    driver = make_driver(config.protocol, config.options)
    try:
        model = await driver.check()
        tokenizer_dir = None
        if config.tokenizer is None:
            found = await asyncio.to_thread(server_tokenizer_dir, config.protocol, config.options.url)
            tokenizer_dir = found if found and Path(found).is_dir() else None
        prompts = await asyncio.to_thread(build_prompts, config, tokenizer_dir, file_prompts)
        metrics_url = config.metrics_url
        if metrics_url == "auto":
            metrics_url = default_metrics_url(config.protocol, config.options.url)
        settings = {
            **config.settings(),
            "model": model,
            "metrics_url": metrics_url,
            "tokenizer": config.tokenizer or tokenizer_dir,
        }
        return await run_sweep(
            driver,
            config.steps,
            prompts,
            settings=settings,
            slo=config.slo,
            metrics_url=metrics_url,
            warmup=config.warmup,
            seed=config.seed,
            on_step=on_step,
        )
    finally:
        await driver.close()


def step_line(summary: StepSummary) -> str:
    """A one-line digest of a finished step, for the live log."""
    ttft, itl = summary.latency["ttft"].p50 * 1000, summary.latency["itl"].p50 * 1000
    errors = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.errors.items()))
    return (
        f"{summary.label}: {summary.completed}/{summary.requests} ok"
        + (f" ({errors})" if errors else "")
        + (f", TTFT p50 {ttft:.1f} ms" if summary.completed else "")
        + (f", ITL p50 {itl:.2f} ms" if itl == itl else "")
        + f", {summary.output_tokens_per_s:.1f} out tok/s"
        + lag_warning(summary)
    )


def lag_warning(summary: StepSummary) -> str:
    """A warning when sends left more than 10 ms behind the Poisson schedule (p99): the client
    machine, not the server, limited the offered load."""
    lag = summary.send_lag
    if lag is None or not lag.p99 > 0.010:
        return ""
    return f"; warning: sends lagged the schedule by {lag.p50 * 1000:.1f} ms p50, {lag.p99 * 1000:.1f} ms p99"
