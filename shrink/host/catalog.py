"""Target profiles: loading, schema validation, `extends` inheritance and aliases."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from shrink.api.target import Target
from shrink.errors import PluginError, Problem, TargetError, UsageError
from shrink.support.jsonio import load_strict
from shrink.support.validation import brief, schema_problems


@cache
def target_schema() -> dict[str, Any]:
    return json.loads(resources.files("shrink").joinpath("schemas/target.schema.json").read_text())


def read_profile(item: Path | dict[str, Any], label: str) -> dict[str, Any]:
    """Load (if a path) and validate one profile; raises `UsageError` naming the file and path."""
    profile = load_strict(Path(item), label) if not isinstance(item, dict) else dict(item)
    problems = schema_problems(profile, target_schema(), label)
    if problems:
        raise TargetError(problems)
    return profile


def registered_profile(item: Any, plugin: str) -> dict[str, Any]:
    """Load and validate a profile the plugin labelled `plugin` registered (a broken one is exit 3)."""
    if isinstance(item, dict):
        label = f"target {item.get('name', '?')!r} of {plugin}"
    else:
        label = f"{Path(item).name} ({plugin})"
    try:
        return read_profile(item, label)
    except UsageError as exc:
        raise PluginError(exc.problems) from None


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class Catalog:
    """All registered profiles, by name and alias."""

    def __init__(self, profiles: Mapping[str, tuple[dict[str, Any], str]]) -> None:
        """`profiles`: each registered profile and the label of the plugin that registered it, by name."""
        self.profiles: dict[str, tuple[dict[str, Any], str]] = dict(sorted(profiles.items()))
        self.aliases: dict[str, str] = {}
        problems: list[Problem] = []
        for name, (profile, origin) in self.profiles.items():
            for alias in profile.get("aliases", []):
                owner = self.aliases.get(alias)
                if alias in self.profiles or (owner and owner != name):
                    problems.append(Problem(f"target {name!r} ({origin})", f"alias {alias!r} is already used by target {owner or alias!r}"))
                self.aliases[alias] = name
        if problems:
            raise PluginError(problems)

    def names(self) -> list[str]:
        return sorted(self.profiles)

    def canonical(self, name: str) -> str | None:
        if name in self.profiles:
            return name
        return self.aliases.get(name)

    def resolve(self, name: str, where: str = "--target") -> Target:
        """Resolve a profile by name, alias, or path to a profile JSON file."""
        if name.endswith(".json") or "/" in name or "\\" in name:
            return self._resolve_file(Path(name), where)
        canonical = self.canonical(name)
        if canonical is None:
            choices = list(self.profiles) + list(self.aliases)
            close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else "see `shrink targets` for the installed targets"
            raise TargetError(f"unknown target {brief(name)}", where=where, hint=hint)
        profile, origin = self.profiles[canonical]
        merged, chain = self._inherit(profile, origin)
        return Target(canonical, merged, origin, chain)

    def _resolve_file(self, path: Path, where: str) -> Target:
        if not path.is_file():
            raise TargetError(f"target profile {str(path)!r} does not exist", where=where)
        profile = read_profile(path, str(path))
        merged, chain = self._inherit(profile, str(path))
        return Target(profile["name"], merged, str(path), chain)

    def _inherit(self, profile: dict[str, Any], origin: str) -> tuple[dict[str, Any], tuple[str, ...]]:
        chain = [profile["name"]]
        layers = [profile]
        current = profile
        while "extends" in current:
            parent_name = self.canonical(current["extends"])
            if parent_name is None:
                raise TargetError(f"extends unknown target {current['extends']!r}", where=f"target {current['name']!r} ({origin})")
            if parent_name in chain:
                raise TargetError(f"'extends' forms a cycle: {' -> '.join(chain + [parent_name])}", where=f"target {profile['name']!r}")
            chain.append(parent_name)
            current = self.profiles[parent_name][0]
            layers.append(current)
        merged: dict[str, Any] = {}
        for layer in reversed(layers):
            merged = _merge(merged, layer)
        merged.pop("extends", None)
        merged["name"] = profile["name"]
        merged["aliases"] = profile.get("aliases", [])
        return merged, tuple(chain)
