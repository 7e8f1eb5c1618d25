"""Schema checks shared by the chart tests: upstream CRD schemas with unknown fields rejected."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

BUILTIN_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2"}
BUILTIN_GROUPS |= {"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"}


def closed_schema(schema: Any) -> Any:
    """A copy of a CRD schema where objects with declared properties reject unknown fields."""
    if isinstance(schema, list):
        return [closed_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed_schema(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validator(schemas: dict, obj: dict) -> jsonschema.Draft7Validator:
    group, _, version = obj["apiVersion"].rpartition("/")
    key = (group, version, obj["kind"])
    if key not in schemas:
        pytest.fail(f"{obj['kind']} {obj['apiVersion']}: no CRD in SHARED_CRDS_DIR (have {sorted(schemas)})")
    schema = closed_schema(copy.deepcopy(schemas[key]))
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)
