"""`Target`: a resolved target profile (inheritance applied), as passes and checks see it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """A resolved target profile (inheritance applied)."""

    name: str
    profile: dict[str, Any]
    origin: str  # where it came from: plugin label or file path
    chain: tuple[str, ...]  # this profile and its ancestors, nearest first

    @property
    def sha256(self) -> str:
        canonical = json.dumps(self.profile, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(canonical).hexdigest()

    def get(self, *keys: str, default: Any = None) -> Any:
        value: Any = self.profile
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return default
            value = value[key]
        return value

    @property
    def export_opset(self) -> int:
        return int(self.get("export_opset", default=17))
