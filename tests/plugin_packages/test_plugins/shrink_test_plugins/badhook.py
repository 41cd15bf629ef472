from __future__ import annotations

from shrink import hookimpl


@hookimpl
def shrink_register_passs() -> list[object]:  # misspelt on purpose: matches no hookspec
    return []
