"""The commands as Python functions, each returning the result object its `--json` output serialises; the CLI is
a thin layer over them. Errors raise the `ShrinkError` family, never `sys.exit`."""

from shrink.commands.models import inspect, verify
from shrink.commands.passes import describe_pass, list_passes
from shrink.commands.recipes import compile, plan
from shrink.commands.search import search
from shrink.commands.results import (
    CompileResult,
    InitResult,
    InspectResult,
    OptionInfo,
    PassInfo,
    PlanResult,
    Result,
    SearchResult,
    VerifyResult,
)

__all__ = ["CompileResult", "InitResult", "InspectResult", "OptionInfo", "PassInfo", "PlanResult", "Result",
           "SearchResult", "VerifyResult", "compile", "describe_pass", "inspect", "list_passes", "plan", "search", "verify"]
