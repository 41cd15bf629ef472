"""`shrink schema`: the recipe schema composed from every installed plugin's options."""

from __future__ import annotations

import copy
from typing import Any

from shrink.api.preprocessing import record_schema
from shrink.host.catalog import target_schema
from shrink.host.registry import Registry
from shrink.plan.load import envelope_schema
from shrink.plan.planner import options_schema
from shrink.plan.spaces import MARKER_SCHEMA


def _hoist(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """Move a generated schema's `$defs` to the top level under prefixed names, fixing `$ref`s."""
    schema = copy.deepcopy(schema)
    local = schema.pop("$defs", {})

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (f"#/$defs/{prefix}{v.removeprefix('#/$defs/')}" if k == "$ref" and isinstance(v, str) else fix(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    for name, sub in local.items():
        defs[f"{prefix}{name}"] = fix(sub)
    return fix(schema)


def _variants(registry: Registry, kind: str, key: str, defs: dict[str, Any]) -> list[dict[str, Any]]:
    variants = []
    for name in registry.names(kind):
        cls = registry.get(kind, name).obj  # type: ignore[union-attr]
        sub = _hoist(options_schema(cls.Options, key, name), f"{name}.", defs)
        sub["title"] = name
        if cls.__doc__:
            sub["description"] = cls.__doc__.strip().splitlines()[0]
        variants.append(sub)
        if kind == "passes" and getattr(cls, "default", False):
            bare = copy.deepcopy(sub)
            bare["properties"][key] = {"const": name.split(".", 1)[0]}
            bare["title"] = f"{name.split('.', 1)[0]} (= {name})"
            variants.append(bare)
    return variants


def recipe_schema(registry: Registry) -> dict[str, Any]:
    schema = envelope_schema()
    defs: dict[str, Any] = {}
    props = schema["properties"]
    props["model"] = {**props["model"], "anyOf": _variants(registry, "sources", "source", defs)}
    props["data"] = {**props["data"], "anyOf": _variants(registry, "datasets", "source", defs)}
    targets = registry.names("targets")
    props["target"] = {**props["target"], "examples": targets}
    steps = _variants(registry, "passes", "pass", defs)
    for step in steps:  # any pass option may be a search space instead of a value (`shrink search`)
        step["properties"] = {key: value if key in ("pass", "description") else {"anyOf": [value, {"$ref": "#/$defs/search"}]}
                              for key, value in step.get("properties", {}).items()}
    defs["search"] = MARKER_SCHEMA
    props["passes"]["items"] = {"anyOf": steps}
    if defs:
        schema["$defs"] = defs
    return schema


def schema_for(kind: str, registry: Registry | None) -> dict[str, Any]:
    if kind == "target":
        return target_schema()
    if kind == "preprocessing":
        return record_schema()
    assert registry is not None
    return recipe_schema(registry)
