"""What TensorRT-LLM 1.2.1 accepts, read from the checked-in ``trtllm_1_2_1.json``.

The JSON holds only facts taken from the pinned release's sources (its ``source`` section
names the repository, commit and file of each group): the flags of ``trtllm-build``,
``examples/quantization/quantize.py`` and the Llama ``convert_checkpoint.py`` with their
types and ``choices``, the checkpoint ``config.json`` keys, the ``QuantAlgo`` values, the
precision support matrix and the toolchain versions. :func:`argv_problems` re-parses an
argv the way those tools' ``argparse`` parsers do, so a plan is checked before it runs.
"""

from __future__ import annotations

import argparse
import functools
import importlib.resources
import json
from collections.abc import Sequence
from typing import Any

FACTS_FILE = "trtllm_1_2_1.json"
TOOLS = ("trtllm-build", "quantize.py", "convert_checkpoint.py")
_TYPES: dict[str, type] = {"str": str, "int": int, "float": float}


@functools.cache
def load_facts() -> dict[str, Any]:
    """The facts mapping (parsed once, treat as read-only)."""
    text = importlib.resources.files(__package__).joinpath(FACTS_FILE).read_text()
    return json.loads(text)


def flag_spec(tool: str, flag: str) -> dict[str, Any]:
    """The facts entry of one flag (aliases resolved).

    Raises:
        KeyError: the tool has no such flag.
    """
    flags = load_facts()["tools"][tool]["flags"]
    spec = flags[flag]
    return flags[spec["alias_of"]] if "alias_of" in spec else spec


def flag_choices(tool: str, flag: str) -> list[Any]:
    """The ``choices`` of a flag (empty when free-form)."""
    choices = flag_spec(tool, flag).get("choices")
    return list(choices) if isinstance(choices, list) else []


class _Rejected(Exception):
    pass


class _StrictParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print and sys.exit(2)
        raise _Rejected(message)


def _case_insensitive(choices: list[str]) -> Any:
    def parse(value: str) -> str:
        if value.lower() not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from {choices})")
        return value.lower()

    return parse


@functools.cache
def _parser(tool: str) -> argparse.ArgumentParser:
    parser = _StrictParser(prog=tool, add_help=False, allow_abbrev=False)
    flags = load_facts()["tools"][tool]["flags"]
    aliases: dict[str, list[str]] = {}
    for name, spec in flags.items():
        if "alias_of" in spec:
            aliases.setdefault(spec["alias_of"], []).append(name)
    for name, spec in flags.items():
        if "alias_of" in spec:
            continue
        names = [name, *aliases.get(name, [])]
        if spec["type"] == "store_true":
            parser.add_argument(*names, action="store_true")
            continue
        kwargs: dict[str, Any] = {"type": _TYPES[spec["type"]]}
        choices = spec.get("choices")
        if isinstance(choices, list):
            if spec.get("case_insensitive"):
                kwargs["type"] = _case_insensitive(choices)
            else:
                kwargs["choices"] = choices
        if "nargs" in spec:
            kwargs["nargs"] = spec["nargs"]
        if "const" in spec:
            kwargs["const"] = spec["const"]
        parser.add_argument(*names, **kwargs)
    return parser


def parse_argv(tool: str, args: Sequence[str]) -> dict[str, Any]:
    """Parse a tool's arguments (without the program) as 1.2.1's parser would.

    Returns:
        The parsed namespace as a dict (flag name without dashes -> value).

    Raises:
        ValueError: an unknown flag, a value of the wrong type or outside ``choices``, or
            a missing required flag; the message names it.
    """
    try:
        namespace, extra = _parser(tool).parse_known_args(list(args))
    except _Rejected as e:
        raise ValueError(f"{tool}: {e}") from None
    if extra:
        raise ValueError(f"{tool}: arguments 1.2.1 does not accept: {' '.join(extra)}")
    given = {a.split("=", 1)[0] for a in args if a.startswith("-")}
    missing = [f for f in load_facts()["tools"][tool]["required"] if f not in given]
    if missing:
        raise ValueError(f"{tool}: missing required flag(s) {', '.join(missing)}")
    return vars(namespace)


def argv_problems(tool: str, args: Sequence[str]) -> list[str]:
    """Empty when :func:`parse_argv` accepts ``args``, else its message."""
    try:
        parse_argv(tool, args)
    except ValueError as e:
        return [str(e)]
    return []


def arch_for_sm(sm: int) -> dict[str, Any] | None:
    """The support-matrix row (arch, SMs, precisions) that lists ``sm``, if any."""
    for row in load_facts()["hardware"]["precision_by_arch"]:
        if sm in row["sm"]:
            return row
    return None


def min_sm_for(precision: str) -> int:
    """The lowest SM whose support-matrix row lists ``precision`` (e.g. ``FP8`` -> 89)."""
    rows = load_facts()["hardware"]["precision_by_arch"]
    return min(min(r["sm"]) for r in rows if precision in r["precisions"])


def supported_sms() -> list[int]:
    """Every SM listed in the 1.2.1 support matrix."""
    return sorted(sm for r in load_facts()["hardware"]["precision_by_arch"] for sm in r["sm"])
