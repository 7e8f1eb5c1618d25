"""Model facts needed at plan time (heads, layers, positions), read without the weights.

Sources: a Hugging Face ``config.json`` (local file, or fetched alone from the hub), or the
metadata of a GGUF file. Nothing here downloads weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triton_llm.errors import NotFoundError, RecipeError

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")


@dataclass(frozen=True)
class ModelInfo:
    """Shape facts of a decoder-only transformer."""

    architecture: str
    num_attention_heads: int
    num_key_value_heads: int
    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    head_dim: int

    @classmethod
    def from_hf_config(cls, config: dict[str, Any], *, source: str = "config.json") -> ModelInfo:
        """Read the facts from a Hugging Face ``config.json`` mapping.

        Raises:
            RecipeError: a required key is missing.
        """
        try:
            heads = int(config["num_attention_heads"])
            hidden = int(config["hidden_size"])
            archs = config.get("architectures") or [config.get("model_type", "unknown")]
            return cls(
                architecture=str(archs[0]),
                num_attention_heads=heads,
                num_key_value_heads=int(config.get("num_key_value_heads") or heads),
                num_hidden_layers=int(config["num_hidden_layers"]),
                hidden_size=hidden,
                intermediate_size=int(config["intermediate_size"]),
                vocab_size=int(config["vocab_size"]),
                max_position_embeddings=int(config["max_position_embeddings"]),
                head_dim=int(config.get("head_dim") or hidden // heads),
            )
        except KeyError as e:
            raise RecipeError(f"{source}: missing model key {e.args[0]!r}", path=source) from e


def read_hf_config(model_dir: Path) -> dict[str, Any]:
    """Load ``config.json`` from a Hugging Face model folder.

    Raises:
        NotFoundError: the folder has no config.json.
    """
    path = model_dir / "config.json"
    if not path.is_file():
        raise NotFoundError(
            f"{model_dir} has no config.json; is it a Hugging Face checkpoint?", path=str(path)
        )
    return json.loads(path.read_text())


def model_info_from_dir(model_dir: Path) -> ModelInfo:
    """ModelInfo of a local Hugging Face model folder."""
    return ModelInfo.from_hf_config(read_hf_config(model_dir), source=str(model_dir / "config.json"))
