"""Plugin loading and the registry of everything plugins provide.

Plugins come only from the `shrink` entry-point group (built-ins included). A plugin that fails to
import is recorded with its reason and the rest keep working; two plugins registering the same
name are a conflict, recorded so that `shrink plugins` can show it and raised (exit 3) by anything
that would use the ambiguous registry.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from shrink.api import hookspecs
from shrink.api.context import ModelFamily
from shrink.api.passes import check_pass_class
from shrink.errors import PluginError, Problem
from shrink.host.catalog import Catalog, registered_profile

log = logging.getLogger("shrink.host.registry")

ENTRY_POINT_GROUP = "shrink"
DISABLE_ENV = "SHRINK_DISABLE_PLUGINS"
BUILTIN_DIST = "shrink"


@dataclass
class PluginInfo:
    """One entry point of the `shrink` group and what came of loading it."""

    name: str
    value: str
    dist: str
    version: str
    error: str | None = None
    disabled: bool = False
    provides: dict[str, list[str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.dist} {self.version} ({self.name})" if self.dist else self.name

    @property
    def builtin(self) -> bool:
        return self.dist == BUILTIN_DIST


@dataclass
class Entry:
    """A registered object (pass, source, dataset, check class or target profile) and its plugin."""

    name: str
    obj: Any
    plugin: PluginInfo


KINDS = ("passes", "targets", "sources", "datasets", "families", "checks")
SINGULAR = {"passes": "pass", "targets": "target", "sources": "source", "datasets": "dataset", "families": "family",
            "checks": "check"}


def _disabled_names() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen: set[tuple[str, str]] = set()
    unique = []
    for ep in sorted(eps, key=lambda e: (e.dist.name if e.dist else "", e.name)):
        key = (ep.name, ep.value)
        if key not in seen:  # an editable install can list the same distribution twice
            seen.add(key)
            unique.append(ep)
    return unique


class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("shrink")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.conflicts: list[Problem] = []
        self._module_plugin: dict[int, PluginInfo] = {}
        self._families: dict[str, ModelFamily] | None = None

    # loading ------------------------------------------------------------------------------------

    @classmethod
    def load(cls, extra: list[tuple[str, Any]] | None = None) -> Registry:
        """Load every entry point of the `shrink` group (and `extra` in-process plugins)."""
        registry = cls()
        disabled = _disabled_names()
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist else ""
            info = PluginInfo(ep.name, ep.value, dist, ep.dist.version if ep.dist else "")
            registry.plugins.append(info)
            if ep.name in disabled or dist in disabled:
                info.disabled = True
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = f"{type(exc).__name__}: {exc}".strip()
                continue
            registry._register(info, module)
        for name, obj in extra or []:
            info = PluginInfo(name, repr(obj), "", "")
            registry.plugins.append(info)
            registry._register(info, obj)
        try:
            registry.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            owner = registry._module_plugin.get(id(exc.plugin))
            raise PluginError(
                f"{exc}", where=f"plugin {owner.label}" if owner else "plugin",
                hint="hook implementations must match a spec in shrink.api.hookspecs (see `shrink plugins`)",
            ) from None
        registry._collect()
        return registry

    def _register(self, info: PluginInfo, module: Any) -> None:
        try:
            self.pm.register(module, name=f"{info.dist}:{info.name}")
        except ValueError:
            return  # the same module object registered twice
        except pluggy.PluginValidationError as exc:
            info.error = f"invalid hook implementation: {exc}"
            return
        self._module_plugin[id(module)] = info

    def _collect(self) -> None:
        for kind in KINDS:
            hook = getattr(self.pm.hook, f"shrink_register_{kind}")
            for impl in hook.get_hookimpls():
                info = self._module_plugin.get(id(impl.plugin))
                if info is None:
                    continue
                try:
                    items = impl.function() or []
                    for item in items:
                        if kind == "targets":
                            item = registered_profile(item, f"plugin {info.label}")
                        self._add(kind, self._name(kind, item, info), item, info)
                except PluginError as exc:
                    info.error = str(exc)
                except Exception as exc:
                    log.debug("shrink_register_%s of %s raised", kind, info.label, exc_info=True)
                    info.error = f"shrink_register_{kind} raised {type(exc).__name__}: {exc}"
                    info.provides.pop(kind, None)

    def _name(self, kind: str, item: Any, info: PluginInfo) -> str:
        name = item["name"] if kind == "targets" else getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{SINGULAR[kind]} {item!r} has no 'name'", where=f"plugin {info.label}")
        if kind == "passes":
            check_pass_class(item, f"plugin {info.label}")
        if kind == "families" and not (isinstance(item, type) and issubclass(item, ModelFamily)):
            raise PluginError(f"{item!r} is not a subclass of shrink.ModelFamily", where=f"plugin {info.label}")
        return name

    def _add(self, kind: str, name: str, item: Any, info: PluginInfo) -> None:
        table = self.entries[kind]
        if name in table and table[name].obj is not item:
            other = table[name].plugin
            self.conflicts.append(
                Problem(
                    f"plugin {info.label}",
                    f"{SINGULAR[kind]} {name!r} is also registered by plugin {other.label}",
                    hint=f"uninstall one of them or disable one with {DISABLE_ENV}={info.name}",
                )
            )
            return
        table[name] = Entry(name, item, info)
        info.provides.setdefault(kind, []).append(name)

    # queries ------------------------------------------------------------------------------------

    def ensure_consistent(self) -> None:
        """Raise `PluginError` (exit 3) if two plugins registered the same name."""
        if self.conflicts:
            raise PluginError(list(self.conflicts))

    @property
    def failed(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Entry | None:
        return self.entries[kind].get(name)

    def default_pass(self, kind: str) -> Entry | None:
        for entry in self.entries["passes"].values():
            if entry.name.split(".", 1)[0] == kind and getattr(entry.obj, "default", False):
                return entry
        return None

    def suggest(self, kind: str, name: str) -> str | None:
        """A 'did you mean' hint for an unknown name, mentioning plugins that failed to load."""
        candidates = list(self.entries[kind])
        if kind == "passes":
            candidates += sorted({n.split(".", 1)[0] for n in candidates})
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else (
            f"installed {kind}: {', '.join(sorted(self.entries[kind]))}" if self.entries[kind] else None)
        if self.failed:
            broken = ", ".join(p.label for p in self.failed)
            hint = (hint + " " if hint else "") + f"(plugins that failed to load: {broken})"
        return hint

    def catalog(self) -> Catalog:
        """The registered target profiles, by name and alias (raises `PluginError` on clashing aliases)."""
        return Catalog({name: (entry.obj, entry.plugin.label) for name, entry in self.entries["targets"].items()})

    def families(self) -> dict[str, ModelFamily]:
        """One instance of every registered model family, by name."""
        if self._families is None:
            self._families = {name: entry.obj() for name, entry in self.entries["families"].items()}
        return self._families

    def family_for(self, name: str, format: str) -> ModelFamily:
        """The family `name`, or (no name) the one registered for `format`, or the generic defaults."""
        families = self.families()
        if name:
            if name not in families:
                raise PluginError(f"model family {name!r} is not registered by any plugin",
                                  hint=self.suggest("families", name))
            return families[name]
        for family in families.values():
            if format in family.formats:
                return family
        return ModelFamily()

    def extra_metrics(self, artifact: Any, ctx: Any) -> dict[str, Any]:
        """What `shrink_measure_artifact` implementations add to the family's metrics, merged."""
        metrics: dict[str, Any] = {}
        for result in reversed(self.pm.hook.shrink_measure_artifact(artifact=artifact, ctx=ctx)):
            if result:
                metrics.update(result)
        return metrics

