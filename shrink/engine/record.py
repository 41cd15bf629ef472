"""The bundle's preprocessing record: written by the data source that fed the compile, completed by the final
model's family, checked against `shrink schema preprocessing` (see `shrink.api.preprocessing`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shrink.api.preprocessing import CLASSIFICATION, record_problems
from shrink.errors import PluginError, ShrinkError
from shrink.support.jsonio import jsonable

if TYPE_CHECKING:
    from shrink.engine.run import RunResult


def preprocessing_record(result: RunResult) -> dict[str, Any] | None:
    """The record for the run's final model, or None when its data source records none (or there is no data).
    A record that breaks the schema is the data source's or family's bug (exit 3)."""
    plan, final = result.plan, result.final
    if plan.data is None:
        return None
    entry = plan.data_entry
    who = f"data source {plan.data.name!r}" + (f" (plugin {entry.plugin.label})" if entry is not None else "")
    try:
        record = plan.data.preprocessing(result.ctx, list(final.meta.get("inputs", [])))
        record = result.ctx.family(final).preprocessing(final, record)
    except ShrinkError:
        raise
    except Exception as exc:
        raise PluginError(f"{who}: writing the preprocessing record raised {type(exc).__name__}: {exc}") from exc
    if record is None:
        return None
    record = jsonable(dict(record))
    if record.get("task") == CLASSIFICATION and record.get("output") is None:
        outputs = final.meta.get("outputs") or []
        record["output"] = outputs[0].get("name") if outputs and isinstance(outputs[0], dict) else None
    problems = record_problems(record, f"the preprocessing record of {who}")
    if problems:
        raise PluginError(problems)
    return record
