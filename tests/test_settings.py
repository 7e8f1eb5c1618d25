"""Settings resolution and the validation rules it enforces: each rule rejects a bad value with a
ConfigError naming the field, the value and the variable that sets it."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_llm.errors import ConfigError
from triton_llm.settings import MiB, Settings, TransferSettings, load_settings


def _load(tmp_path: Path, flags: dict[str, object] | None = None, **env: str) -> Settings:
    return load_settings(flags, environ=env, config_file=tmp_path / "none.yaml")


def test_defaults(tmp_path: Path) -> None:
    s = _load(tmp_path, XDG_CACHE_HOME="/xdg")
    assert s.cache_dir == Path("/xdg/triton-llm")
    assert s.store_uri() == "file:///xdg/triton-llm/store"
    assert (s.s3_endpoint_url, s.engines_dir, s.progress, s.transport) == (None, None, "auto", {})
    assert s.transfer == TransferSettings()
    assert s.transfer.max_concurrency * s.transfer.io_buffer_size == 4 * MiB
    assert dict(s.environ) == {"XDG_CACHE_HOME": "/xdg"}


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "store: file:///file\ns3_endpoint_url: http://file\ntransfer:\n  retries: 1\n  max_concurrency: 2\n"
    )
    env = {"TRITON_LLM_S3_ENDPOINT_URL": "http://env", "TRITON_LLM_TRANSFER__RETRIES": "3"}
    s = load_settings({"s3_endpoint_url": "http://flag"}, environ=env, config_file=cfg)
    assert (s.store, s.s3_endpoint_url) == ("file:///file", "http://flag")
    assert (s.transfer.retries, s.transfer.max_concurrency) == (3, 2)


def test_environment_strings_are_converted(tmp_path: Path) -> None:
    s = _load(
        tmp_path,
        TRITON_LLM_TRANSFER__MAX_CONCURRENCY=" 8 ",
        TRITON_LLM_TRANSFER__PART_SIZE="8388608.0",
        TRITON_LLM_TRANSFER__RETRY_BACKOFF="1.5",
        TRITON_LLM_CACHE_DIR="/c",
        TRITON_LLM_ENGINES_DIR="/e",
        TRITON_LLM_TRANSPORT__NCCL_SOCKET_IFNAME="eth0",
    )
    assert (s.transfer.max_concurrency, s.transfer.part_size, s.transfer.retry_backoff) == (8, 8 * MiB, 1.5)
    assert (s.cache_dir, s.engines_dir) == (Path("/c"), Path("/e"))
    assert s.transport == {"nccl_socket_ifname": "eth0"}


@pytest.mark.parametrize(
    ("env", "field", "message"),
    [
        # wrong type
        ({"TRITON_LLM_TRANSFER__MAX_CONCURRENCY": "many"}, "transfer.max_concurrency", "valid integer"),
        ({"TRITON_LLM_TRANSFER__RETRIES": "2.5"}, "transfer.retries", "fractional part"),
        ({"TRITON_LLM_TRANSFER__RETRY_BACKOFF": "soon"}, "transfer.retry_backoff", "valid number"),
        ({"TRITON_LLM_TRANSFER": "16"}, "transfer", "valid dictionary or instance of TransferSettings"),
        # out of range, both bounds
        (
            {"TRITON_LLM_TRANSFER__MAX_CONCURRENCY": "0"},
            "transfer.max_concurrency",
            "greater than or equal to 1",
        ),
        (
            {"TRITON_LLM_TRANSFER__MAX_CONCURRENCY": "129"},
            "transfer.max_concurrency",
            "less than or equal to 128",
        ),
        (
            {"TRITON_LLM_TRANSFER__PART_SIZE": "1000"},
            "transfer.part_size",
            f"greater than or equal to {5 * MiB}",
        ),
        ({"TRITON_LLM_TRANSFER__MULTIPART_THRESHOLD": "1"}, "transfer.multipart_threshold", "greater than"),
        ({"TRITON_LLM_TRANSFER__IO_BUFFER_SIZE": "65535"}, "transfer.io_buffer_size", "greater than"),
        ({"TRITON_LLM_TRANSFER__RETRIES": "21"}, "transfer.retries", "less than or equal to 20"),
        (
            {"TRITON_LLM_TRANSFER__RETRY_BACKOFF": "-0.1"},
            "transfer.retry_backoff",
            "greater than or equal to 0",
        ),
        (
            {"TRITON_LLM_TRANSFER__RETRY_BACKOFF": "nan"},
            "transfer.retry_backoff",
            "greater than or equal to 0",
        ),
        # unknown keys, top level and nested
        ({"TRITON_LLM_STOR": "s3://b/p"}, "stor", "Extra inputs are not permitted"),
        (
            {"TRITON_LLM_TRANSFER__MAX_CONCURENCY": "4"},
            "transfer.max_concurency",
            "Extra inputs are not permitted",
        ),
        # a value outside the allowed set
        ({"TRITON_LLM_PROGRESS": "OFF"}, "progress", "'auto', 'bar', 'plain' or 'off'"),
        ({"TRITON_LLM_PROGRESS": "false"}, "progress", "'auto', 'bar', 'plain' or 'off'"),
    ],
)
def test_bad_environment_values_name_field_value_and_variable(
    tmp_path: Path, env: dict[str, str], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, **env)
    (value,) = env.values()
    err = caught.value
    assert (err.field, err.value) == (field, value)
    assert message in err.message and f"{field}={value!r}" in err.message
    assert err.hint is not None and f"TRITON_LLM_{field.upper().replace('.', '__')}" in err.hint


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("store: 5\n", "store"),
        ("s3_endpoint_url: [a]\n", "s3_endpoint_url"),
        ("cache_dir: 5\n", "cache_dir"),
        ("engines_dir: {a: b}\n", "engines_dir"),
        ("transfer: [1]\n", "transfer"),
        ("transfer:\n  retries: true\n", "transfer.retries"),  # YAML true is not a count
        ("transfer:\n  retry_backoff: false\n", "transfer.retry_backoff"),
        ("progress: true\n", "progress"),
        ("progress: 1\n", "progress"),
        ("transport: [eth0]\n", "transport"),
        ("transport: {1: eth0}\n", "transport"),
        ("nope: 1\n", "nope"),
    ],
)
def test_bad_settings_file_values_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={}, config_file=cfg)
    assert caught.value.field == field


def test_unquoted_progress_off_in_the_settings_file_means_off(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("progress: off\n")  # YAML 1.1 reads this as false
    assert load_settings({}, environ={}, config_file=cfg).progress == "off"


def test_none_flags_fall_through_to_lower_sources(tmp_path: Path) -> None:
    s = _load(tmp_path, {"store": None, "progress": None}, TRITON_LLM_STORE="s3://b/p")
    assert (s.store, s.progress) == ("s3://b/p", "auto")


def test_direct_construction_is_checked_by_the_same_rules() -> None:
    assert TransferSettings(max_concurrency="3").max_concurrency == 3  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"transfer\.retries=-1: Input should be greater than or equal to 0"
    ):
        TransferSettings(retries=-1)
    with pytest.raises(ConfigError, match=r"progress='loud'"):
        Settings(progress="loud")  # type: ignore[arg-type]
    s = Settings(transfer={"retries": 2}, cache_dir="/c")  # type: ignore[arg-type]
    assert (s.transfer, s.cache_dir) == (TransferSettings(retries=2), Path("/c"))


def test_settings_are_frozen() -> None:
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().store = "s3://b/p"  # type: ignore[misc]
