"""Plan-time validation: every recipe problem, found before any weights are fetched or built.

Each problem is a :class:`RecipeError` naming the field, the value and the rule. Rules that
depend on the model read :class:`ModelInfo` (config.json or GGUF metadata only); rules that
depend on the build backend come from ``backend.check``; runtime switches the serving
settings turn on must be ones the engine can honour (:mod:`triton_llm.engine.runtime_switches`).
"""

from __future__ import annotations

from triton_llm.engine.backends.base import BuildBackend
from triton_llm.engine.gpus import GpuSku, gpu_sku
from triton_llm.engine.model_info import ModelInfo, tensor_parallel_problems
from triton_llm.engine.recipe import Recipe
from triton_llm.engine.runtime_switches import recipe_features, runtime_switches, switch_problems
from triton_llm.errors import RecipeError, RecipeErrors


def model_rules(recipe: Recipe, model: ModelInfo) -> list[RecipeError]:
    """Rules that hold for every backend: parallel split and sequence limits vs the model."""
    errors: list[RecipeError] = []
    tp, pp = recipe.parallelism.tp, recipe.parallelism.pp
    errors += tensor_parallel_problems(model, tp)
    if pp > model.num_hidden_layers:
        errors.append(
            RecipeError(
                f"parallelism.pp={pp}: exceeds the model's {model.num_hidden_layers} layers "
                f"(rule: pp <= num_hidden_layers)",
                field="parallelism.pp",
                value=pp,
            )
        )
    if recipe.build.max_seq_len > model.max_position_embeddings:
        errors.append(
            RecipeError(
                f"build.max_seq_len={recipe.build.max_seq_len}: exceeds the model's "
                f"{model.max_position_embeddings} positions (rule: max_seq_len <= max_position_embeddings)",
                field="build.max_seq_len",
                value=recipe.build.max_seq_len,
            )
        )
    chunked = runtime_switches(recipe_features(recipe), recipe.serving)["enable_chunked_context"]
    if recipe.build.max_num_tokens < recipe.build.max_input_len and not chunked:
        errors.append(
            RecipeError(
                f"build.max_num_tokens={recipe.build.max_num_tokens}: below max_input_len="
                f"{recipe.build.max_input_len} (rule: a whole prompt must fit one step unless chunked "
                f"context is on: build.features.use_paged_context_fmha=true and "
                f"serving.enable_chunked_context not false)",
                field="build.max_num_tokens",
                value=recipe.build.max_num_tokens,
            )
        )
    return errors


def switch_rules(recipe: Recipe) -> list[RecipeError]:
    """Runtime switches the recipe turns on that the engine it builds cannot honour."""
    return [
        RecipeError(message, field=need.serving_field, value=True)
        for need, message in switch_problems(recipe_features(recipe), recipe.serving)
    ]


def target_gpus(recipe: Recipe) -> tuple[list[GpuSku], list[RecipeError]]:
    """The recipe's target SKUs, and an error for each unknown name."""
    skus: list[GpuSku] = []
    errors: list[RecipeError] = []
    for i, name in enumerate(recipe.target.gpus):
        try:
            skus.append(gpu_sku(name, field=f"target.gpus[{i}]"))
        except RecipeError as e:
            errors.append(e)
    return skus, errors


def validate(recipe: Recipe, model: ModelInfo, backend: BuildBackend) -> list[GpuSku | None]:
    """Check a recipe against its model and backend; return the engine targets.

    Returns:
        One entry per engine to build: a GpuSku, or None for a GPU-less backend target.

    Raises:
        RecipeErrors: every problem found, all at once.
    """
    skus, errors = target_gpus(recipe)
    errors += model_rules(recipe, model)
    errors += switch_rules(recipe)
    targets: list[GpuSku | None] = list(skus) if skus else [None]
    errors += backend.check(recipe, model, skus)
    if errors:
        raise RecipeErrors(errors)
    return targets
