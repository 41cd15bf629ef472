"""`passes [NAME]`: the installed passes, and one pass's help generated from the JSON Schema of its options (the
schema `shrink schema recipe` composes), so built-in and third-party passes are described alike."""

from __future__ import annotations

import inspect as pyinspect
import json
from typing import TYPE_CHECKING, Any

from shrink.commands import arguments
from shrink.commands.results import OptionInfo, PassInfo
from shrink.errors import UsageError

if TYPE_CHECKING:
    from shrink.host.registry import Entry, Registry

COMMON_KEYS = ("pass", "description")  # every step has them; `passes NAME` lists the pass's own options


def list_passes(registry: Registry | None = None) -> list[PassInfo]:
    """Every installed pass, by name."""
    reg = arguments.registry(registry)
    return [_info(reg.get("passes", name)) for name in reg.names("passes")]  # type: ignore[arg-type]


def describe_pass(name: str, registry: Registry | None = None, where: str = "name") -> PassInfo:
    """One pass by name, or by bare kind (`distill` → the kind's default); an unknown name is a `UsageError`
    with a did-you-mean."""
    reg = arguments.registry(registry)
    entry = reg.get("passes", name) or (reg.default_pass(name) if "." not in name else None)
    if entry is None:
        raise UsageError(f"unknown pass {name!r}", where=where,
                         hint=reg.suggest("passes", name) or f"installed passes: {', '.join(reg.names('passes'))}")
    return _info(entry)


def _info(entry: Entry) -> PassInfo:
    from shrink.api.passes import summary
    from shrink.plan.planner import options_schema

    cls = entry.obj
    schema = options_schema(cls.Options, "pass", entry.name)
    return PassInfo(name=entry.name, plugin=entry.plugin.label, summary=summary(cls),
                    doc=pyinspect.cleandoc(cls.__doc__ or ""), consumes=tuple(cls.consumes), produces=cls.produces,
                    requires=tuple(sorted(cls.requires)), default=bool(cls.default),
                    options=tuple(options(schema)), schema=schema)


def options(schema: dict[str, Any]) -> list[OptionInfo]:
    """One row per option of a step's schema; a nested object's keys follow it as `option.key` rows."""
    defs = schema.get("$defs", {})
    rows: list[OptionInfo] = []

    def walk(node: dict[str, Any], prefix: str, required: set[str], depth: int) -> None:
        for key, prop in node.get("properties", {}).items():
            if not prefix and key in COMMON_KEYS:
                continue
            target = _deref(prop, defs)
            rows.append(OptionInfo(prefix + key, type_of(prop, defs), prop.get("default"), key in required,
                                   bounds_of(prop, defs), str(prop.get("description") or target.get("description") or "")))
            if target.get("properties") and depth < 3:
                walk(target, f"{prefix}{key}.", set(target.get("required", [])), depth + 1)

    walk(schema, "", set(schema.get("required", [])), 0)
    return rows


def _deref(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The schema a property points to (`$ref`, or the one non-null member of an `anyOf`)."""
    ref = prop.get("$ref")
    if isinstance(ref, str):
        return dict(defs.get(ref.rsplit("/", 1)[-1], {}))
    members = [m for m in prop.get("anyOf", []) if m.get("type") != "null"]
    if len(members) == 1:
        return _deref(members[0], defs)
    return prop


def type_of(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """`integer`, `number`, `string`, `array of string`, `boolean or null`, `object` ..."""
    if "const" in prop:
        return "constant"
    if "$ref" in prop:
        return type_of(_deref(prop, defs), defs)
    if "anyOf" in prop:
        return " or ".join(dict.fromkeys(type_of(m, defs) for m in prop["anyOf"]))
    kind = prop.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        items = prop.get("items")
        return f"array of {type_of(items, defs)}" if isinstance(items, dict) and items else "array"
    if kind is None and "enum" in prop:
        return "string"
    return str(kind or "any")


def bounds_of(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """What the schema allows beyond the type: ranges, choices, lengths, patterns, required keys."""
    parts: list[str] = []
    for member in [prop, *prop.get("anyOf", [])]:
        member = _deref(member, defs) if "$ref" in member else member
        for key, text in (("minimum", "≥ {}"), ("exclusiveMinimum", "> {}"), ("maximum", "≤ {}"),
                          ("exclusiveMaximum", "< {}"), ("minLength", "length ≥ {}"), ("maxLength", "length ≤ {}"),
                          ("minItems", "≥ {} items"), ("maxItems", "≤ {} items"), ("pattern", "matches {}")):
            if key in member:
                parts.append(text.format(member[key]))
        if "enum" in member:
            parts.append("one of " + ", ".join(json.dumps(v) for v in member["enum"]))
        items = member.get("items")
        if isinstance(items, dict) and "enum" in items:
            parts.append("items one of " + ", ".join(json.dumps(v) for v in items["enum"]))
    return ", ".join(dict.fromkeys(parts))
