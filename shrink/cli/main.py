"""The `shrink` command line: parses arguments, calls the commands' Python API (`shrink.commands`) and prints
their results. One function per command; all output goes through `Console`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape

from shrink import __version__
from shrink.cli.console import Console
from shrink.cli.progress import Progress
from shrink.commands import arguments
from shrink.commands.results import error_dict
from shrink.errors import ExitCode, Problem, ShrinkError, UsageError

Handler = Callable[[argparse.Namespace, Console], int]

LABELS = {"target": "--target", "shapes": "--shape", "budgets": "--budget", "allow_incomplete": "--allow-incomplete"}
"""How messages name the commands' arguments on the command line."""


def _registry() -> Any:
    from shrink.host.registry import Registry

    return Registry.load()


def _warn_failed_plugins(registry: Any, console: Console) -> None:
    for info in registry.failed:
        console.warn(f"plugin {info.label} failed to load: {info.error}")


def _loaded(console: Console) -> Any:
    """The plugin registry, with a warning for each plugin that failed to load."""
    registry = _registry()
    _warn_failed_plugins(registry, console)
    return registry


def _junit(args: argparse.Namespace, code: int, target: str | None = None, checks: list[dict[str, Any]] | None = None,
           problems: list[Problem] | None = None) -> None:
    """Write `--junit FILE` when asked (compile, verify); a file that cannot be written is exit 2."""
    path = getattr(args, "junit", None)
    if not path:
        return
    from shrink.report import junit

    try:
        junit.write(Path(path), args.command, code, target=target, checks=checks or [], problems=problems or [],
                    subject=getattr(args, "recipe", None) or getattr(args, "path", None))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}", where="--junit") from None


def _junit_error(args: argparse.Namespace, console: Console, code: int, problems: list[Problem]) -> None:
    """The `--junit` report of a command that ended in an error: one errored testcase with its problems."""
    if any(p.where == "--junit" for p in problems):
        return  # the report itself could not be written
    try:
        _junit(args, code, getattr(args, "target", None), problems=problems)
    except ShrinkError as exc:
        for problem in exc.problems:
            console.problem(problem)


# compile / plan -----------------------------------------------------------------------------------

def _print_checks(console: Console, checks: list[Any]) -> None:
    for c in checks:
        mark = "[green]ok  [/]" if c.ok else "[bold red]FAIL[/]"
        limit = f" (limit {_num(c.limit)} {c.unit})" if c.limit is not None else f" {c.unit}"
        console.print(f"{mark} {c.name}: {_num(c.value)}{limit}" + (f" — {escape(c.cause)}" if c.cause else ""))


def _shapes(args: argparse.Namespace) -> dict[str, list[int]]:
    """`--shape NAME=1x3x224x224` (repeatable): input shapes by name."""
    given = getattr(args, "shape", None) or []
    if not given:
        return {}
    from shrink.analysis import parse_shape

    return dict(parse_shape(text) for text in given)


def _budgets(args: argparse.Namespace) -> dict[str, Any]:
    """`--budget KEY=VALUE` (repeatable)."""
    if not getattr(args, "budget", None):
        return {}
    from shrink.bundle.verify import parse_budgets

    return parse_budgets(args.budget)


def _print_findings(console: Console, findings: Sequence[str]) -> None:
    """What the static analysis could not compute, and its notes: in the text output too, not only in --json."""
    for finding in findings:
        console.print(f"     [yellow]note[/]: {escape(finding)}")


def _allowances(args: argparse.Namespace) -> frozenset[str]:
    """`--allow-incomplete` (all analysis checks) or `--allow-incomplete ram,latency`."""
    return arguments.allowances(getattr(args, "allow_incomplete", None), "--allow-incomplete")


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "–" if value is None else str(value)


def cmd_compile(args: argparse.Namespace, console: Console) -> int:
    from shrink.commands import recipes

    registry = _loaded(console)
    plan = recipes.make(args.recipe, registry, target=args.target, shapes=_shapes(args), budgets=_budgets(args),
                        where=LABELS)
    allowed = _allowances(args)
    with console.stdout_to_stderr(), Progress(console) as progress:
        result = recipes.run(plan, registry, output=args.output, cache=not args.no_cache,
                             strict_cache=args.strict_cache, allow_incomplete=allowed, progress=progress)
    _junit(args, result.exit_code, result.target, [c.as_dict() for c in result.checks])
    if console.json_mode:
        console.emit_json(result.as_dict())
    else:
        _print_checks(console, result.checks)
        _print_findings(console, result.findings)
        for warning in result.warnings:  # what the passes warned about (also in the report)
            console.print(f"     [yellow]warning[/] {escape(warning)}")
        host = result.metrics.get("host_latency_ms")
        if host is not None:
            console.print(f"     host latency: {_num(host)} ms measured on this machine (reported, never gated)")
        verdict = "[bold green]PASS[/]" if result.ok else "[bold red]FAIL[/]"
        from shrink.support import ranks

        console.print(f"{verdict} bundle written to {result.bundle}" if ranks.is_writer()
                      else f"rank {ranks.rank()}: passes done; rank 0 checks the model and writes the bundle to {result.bundle}")
    return result.exit_code


def cmd_cache(args: argparse.Namespace, console: Console) -> int:
    from shrink.engine.cache import MAX_SIZE_ENV, PassCache, default_max_bytes
    from shrink.support.units import human_bytes, parse_age, parse_size

    cache = PassCache(max_bytes=default_max_bytes() if args.action in ("info", "prune") else None)
    if args.action == "clear":
        removed = cache.clear()
        if console.json_mode:
            console.emit_json({"path": str(cache.base), "removed": removed})
        else:
            console.print(f"removed {removed} entries from {cache.base}")
        return ExitCode.OK
    if args.action == "verify":
        return _cache_verify(cache, console)
    if args.action == "prune":
        max_bytes = parse_size(args.max_size, "--max-size") if args.max_size else None
        older_than = parse_age(args.older_than, "--older-than") if args.older_than else None
        if max_bytes is None and older_than is None:
            max_bytes = cache.max_bytes
        if max_bytes is None and older_than is None:
            raise UsageError("nothing to prune by", where="cache prune",
                             hint=f"give --max-size 2GB and/or --older-than 30d (or set ${MAX_SIZE_ENV})")
        pruned = cache.prune(max_bytes=max_bytes, older_than=older_than)
        if console.json_mode:
            console.emit_json({"path": str(cache.base), "removed": [s.describe() for s in pruned.removed],
                               "freed_bytes": pruned.freed, "entries": pruned.entries, "bytes": pruned.bytes})
        else:
            console.print(f"removed {len(pruned.removed)} entries ({human_bytes(pruned.freed)}) from {cache.base}; "
                          f"{pruned.entries} entries, {human_bytes(pruned.bytes)} left")
        return ExitCode.OK
    info = cache.info()
    if console.json_mode:
        console.emit_json(info)
        return ExitCode.OK
    bound = f" (bound ${MAX_SIZE_ENV} = {human_bytes(info['max_bytes'])})" if info["max_bytes"] is not None else ""
    console.print(f"pass cache at {info['path']}: {info['entries']} entries, {info['bytes']:,} bytes "
                  f"({human_bytes(info['bytes'])}){bound}")
    for which in ("oldest", "newest"):
        if info[which]:
            console.print(f"  {which} (by last use): {escape(_describe_entry(info[which]))}")
    for name, count in info["by_pass"].items():
        console.print(f"  {name}: {count}")
    return ExitCode.OK


def _describe_entry(entry: dict[str, Any]) -> str:
    import time

    def when(stamp: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))

    step = " ".join(str(p) for p in (entry.get("step"), entry.get("name")) if p) or "unreadable entry"
    recipe = f" of recipe {entry['recipe']!r}" if entry.get("recipe") else ""
    return f"{step}{recipe}, {entry['bytes']:,} bytes, last used {when(entry['last_used'])}, created {when(entry['created'])}"


def _cache_verify(cache: Any, console: Console) -> int:
    """Every entry's record and files against their recorded sha256; exit 4 when any entry is bad."""
    checked, damaged = cache.verify_all()
    code = ExitCode.CHECK_FAILED if damaged else ExitCode.OK
    bad = [{**stored.describe(), "path": str(damage.path), "file": damage.file, "problem": damage.reason}
           for stored, damage in damaged]
    if console.json_mode:
        console.emit_json({"verdict": "fail" if damaged else "pass", "exit_code": int(code), "path": str(cache.base),
                           "entries": checked, "bad": bad})
        return code
    for stored, damage in damaged:
        record = stored.record
        step = f"{record.get('step')} {record.get('name')} of recipe {record.get('recipe')!r}" if record else "unreadable entry"
        console.print(f"[bold red]BAD[/] {escape(step)}: {escape(damage.file)} {escape(damage.reason)} ({damage.path})")
    if damaged:
        console.print(f"[bold red]FAIL[/] {len(damaged)} of {checked} entries in {cache.base} are damaged "
                      "(a compile recomputes and replaces them; `shrink cache clear` removes everything)")
    else:
        console.print(f"[bold green]PASS[/] {checked} entries in {cache.base} match their recorded sha256")
    return code


def cmd_plan(args: argparse.Namespace, console: Console) -> int:
    from shrink.commands import recipes
    from shrink.commands.results import PlanResult

    result = PlanResult.of(recipes.make(args.recipe, _loaded(console), target=args.target, shapes=_shapes(args),
                                        budgets=_budgets(args), where=LABELS, searchable=True))
    if console.json_mode:
        console.emit_json(result.as_dict())
        return ExitCode.OK
    _print_plan(console, result.plan)
    return ExitCode.OK


def _print_plan(console: Console, plan: Any) -> None:
    from rich.table import Table

    described = plan.describe()
    console.print(f"recipe [bold]{plan.recipe.name}[/] → target [bold]{plan.target.name}[/] "
                  f"(model: {described['source']['source']} → {plan.source.produces}; data: {described['data'] or 'none'})")
    table = Table(title_justify="left")
    for col in ("#", "pass", "plugin", "format", "options"):
        table.add_column(col, overflow="fold")  # narrow terminals and pipes wrap values, never cut them
    for step in described["passes"]:
        options = ", ".join(f"{k}={json.dumps(v)}" for k, v in step["options"].items())
        table.add_row(str(step["index"]), step["pass"], step["plugin"], f"{step['consumes']} → {step['produces']}", options)
    console.print(table)
    for space in plan.spaces:
        console.print(f"search: {space.name} {escape(space.describe())} (planned with {json.dumps(space.candidates()[0])})")
    if plan.recipe.budget:
        console.print("budget: " + ", ".join(f"{k} {'≥' if k == 'accuracy' else '≤'} {v}" for k, v in plan.recipe.budget.items()))
    console.print("[green]plan ok[/]: nothing was run")


def cmd_search(args: argparse.Namespace, console: Console) -> int:
    from shrink.commands.search import search
    from shrink.search.objectives import OBJECTIVES

    def on_trial(record: Any, state: Any) -> None:
        best = state.best
        scored = ", ".join(f"{k} {OBJECTIVES[k].format(v)}" for k, v in record.figures.items())
        outcome = ("error: " + record.error) if record.error else ("feasible" if record.feasible else
                                                                  "fails " + ", ".join(f["check"] for f in record.failed))
        progress("search", state.done / state.total,
                 f"{state.done}/{state.total} trials, {state.feasible} feasible"
                 + (f", best trial {best.number} (" + ", ".join(OBJECTIVES[k].format(v) for k, v in best.figures.items())
                    + ")" if best else ""))
        if not console.err.is_terminal or console.json_mode:
            return
        console.err.print(f"trial {record.number}{' (the recipe as written)' if record.baseline else ''}: "
                          f"{escape(scored)} — {escape(outcome)} ({record.cached_steps}/{record.steps} steps cached, "
                          f"{record.seconds:.1f} s)")

    registry = _loaded(console)
    labels = {**LABELS, "trials": "--trials", "objectives": "--objective", "output": "--output",
              "sampler": "--sampler", "storage": "--storage"}
    with console.stdout_to_stderr(), Progress(console) as progress:
        progress("search", 0.0, f"{args.trials} trials")
        result = search(args.recipe, target=args.target, trials=args.trials, objectives=args.objective,
                                  output=args.output, storage=args.storage, resume=args.resume, sampler=args.sampler,
                                  budgets=_budgets(args), registry=registry, ray_address=args.ray_address,
                                  on_trial=on_trial,
                                  progress=progress if console.err.is_terminal else None, where=labels)
    if console.json_mode:
        console.emit_json(result.as_dict())
        return result.exit_code
    _print_search(console, result)
    return result.exit_code


def _print_search(console: Console, result: Any) -> None:
    from rich.table import Table

    from shrink.search.objectives import OBJECTIVES

    names = [o["name"] for o in result.objectives]
    hit = "–" if result.hit_rate is None else f"{result.hit_rate:.0%}"
    console.print(f"{len(result.trials)} trials ({result.ran} run now, {result.seconds:.1f} s), {result.feasible} "
                  f"feasible; pass-cache hit rate {hit} of the steps run now")
    if result.front:
        table = Table(title="Pareto front (feasible trials)", title_justify="left")
        for col in ("trial", *names, "values"):
            table.add_column(col, overflow="fold")
        for point in result.front:
            chosen = " (chosen)" if result.best and point["trial"] == result.best["trial"] else ""
            table.add_row(f"{point['trial']}{chosen}", *(OBJECTIVES[n].format(point["figures"][n]) for n in names),
                          ", ".join(f"{k}={json.dumps(v)}" for k, v in point["params"].items()))
        console.print(table)
    for problem in result.errors:
        console.problem(problem, label="FAIL")
    if result.best:
        same = "the same model" if result.reproduced else "a DIFFERENT model"
        console.print(f"{'[bold green]PASS[/]' if result.ok else '[bold red]FAIL[/]'} best recipe {result.best['recipe']} "
                      f"(trial {result.best['trial']}); compiled again into {result.bundle}: {same}")
    console.print(f"report: {result.output / 'search.md'}; study: {escape(result.storage)}")


def cmd_init(args: argparse.Namespace, console: Console) -> int:
    from shrink.cli.init import ACCURACY_BUDGET, starter_recipe, write
    from shrink.commands.results import InitResult
    from shrink.engine.compile import load_plan

    registry = _loaded(console)
    registry.ensure_consistent()
    target = registry.catalog().resolve(args.target)
    out = Path(args.output)
    recipe = starter_recipe(registry, args.model, target, args.data, _shapes(args), out, args.weights)
    write(recipe, out, args.force)
    console.info(f"wrote {out}; planning it")
    plan = load_plan(out, registry)
    if plan.data is not None and plan.data.labels:  # labelled data: gate the accuracy too
        write({**recipe, "budget": ACCURACY_BUDGET}, out, force=True)
        plan = load_plan(out, registry)
    if console.json_mode:
        console.emit_json(InitResult(verdict="pass", exit_code=ExitCode.OK, plan=plan, recipe=out).as_dict())
        return ExitCode.OK
    _print_plan(console, plan)
    console.print(f"next: shrink compile {out}")
    return ExitCode.OK


# listing commands ---------------------------------------------------------------------------------

def cmd_passes(args: argparse.Namespace, console: Console) -> int:
    from shrink.commands.passes import describe_pass, list_passes

    registry = _loaded(console)
    if args.name:
        info = describe_pass(args.name, registry, where="passes")
        if console.json_mode:
            console.emit_json(info.as_dict())
        else:
            from shrink.cli.pass_help import render_pass

            render_pass(console, info)
        return _conflicts_code(registry, console)
    rows = [{"name": i.name, "plugin": i.plugin, "consumes": list(i.consumes), "produces": i.produces,
             "default": i.default, "requires": list(i.requires), "summary": i.summary,
             "unavailable": registry.get("passes", i.name).obj.unavailable()} for i in list_passes(registry)]
    if console.json_mode:
        console.emit_json({"passes": rows, "conflicts": [p.as_dict() for p in registry.conflicts]})
    else:
        from rich.markup import escape
        from rich.table import Table

        table = Table()
        for col in ("pass", "formats", "plugin", "summary"):
            table.add_column(col)
        for r in rows:
            name = r["name"] + (" [dim](default)[/]" if r["default"] else "")
            text = r["summary"] + (f" [yellow](unavailable: {escape(r['unavailable'])})[/]" if r["unavailable"] else "")
            table.add_row(name, f"{'/'.join(r['consumes'])} → {r['produces']}", r["plugin"], text)
        console.print(table)
    return _conflicts_code(registry, console)


def _conflicts_code(registry: Any, console: Console) -> int:
    for problem in registry.conflicts:
        console.problem(problem)
    return ExitCode.PLUGIN if registry.conflicts else ExitCode.OK


def cmd_targets(args: argparse.Namespace, console: Console) -> int:

    registry = _registry()
    _warn_failed_plugins(registry, console)
    registry.ensure_consistent()
    catalog = registry.catalog()
    if args.name:
        target = catalog.resolve(args.name, "targets")
        if console.json_mode:
            console.emit_json({"name": target.name, "origin": target.origin, "extends": list(target.chain[1:]),
                               "sha256": target.sha256, "profile": target.profile})
        else:
            console.print(f"[bold]{target.name}[/] from {target.origin}"
                          + (f" (extends {' → '.join(target.chain[1:])})" if len(target.chain) > 1 else ""))
            console.out.print_json(json.dumps(target.profile))
        return ExitCode.OK
    rows = []
    for name in catalog.names():
        target = catalog.resolve(name)
        rows.append({"name": name, "aliases": target.profile.get("aliases", []), "description": target.get("description", default=""),
                     "runtime": target.get("runtime", "name", default=""), "plugin": target.origin})
    if console.json_mode:
        console.emit_json({"targets": rows})
    else:
        from rich.table import Table

        table = Table()
        for col in ("target", "aliases", "runtime", "description"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["name"], ", ".join(r["aliases"]), r["runtime"], r["description"])
        console.print(table)
    return ExitCode.OK


def cmd_plugins(args: argparse.Namespace, console: Console) -> int:
    registry = _registry()
    rows = [{"name": p.name, "dist": p.dist, "version": p.version, "module": p.value,
             "status": "disabled" if p.disabled else ("failed" if p.error else "loaded"), "error": p.error,
             "provides": dict(p.provides)}
            for p in registry.plugins]
    if console.json_mode:
        console.emit_json({"plugins": rows, "conflicts": [p.as_dict() for p in registry.conflicts]})
    else:
        from rich.table import Table

        table = Table()
        for col in ("plugin", "distribution", "status", "provides"):
            table.add_column(col)
        for r in rows:
            provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["provides"].items())
            status = {"loaded": "[green]loaded[/]", "failed": "[red]failed[/]", "disabled": "[dim]disabled[/]"}[r["status"]]
            table.add_row(r["name"], f"{r['dist']} {r['version']}", status, provides if not r["error"] else r["error"])
        console.print(table)
    return _conflicts_code(registry, console)


def cmd_schema(args: argparse.Namespace, console: Console) -> int:
    from shrink.plan.schema import schema_for

    registry = _registry() if args.kind == "recipe" else None
    if registry is not None:
        _warn_failed_plugins(registry, console)
        registry.ensure_consistent()
    console.emit_json(schema_for(args.kind, registry))
    return ExitCode.OK


def cmd_verify(args: argparse.Namespace, console: Console) -> int:
    from shrink.commands.models import verify

    budget = _budgets(args)
    result = verify(args.path, target=args.target, budgets=budget, shapes=_shapes(args),
                    allow_incomplete=_allowances(args), data=args.data, registry=_loaded(console), where=LABELS)
    _junit(args, result.exit_code, result.target, [c.as_dict() for c in result.checks])
    if console.json_mode:
        console.emit_json(result.as_dict())
    else:
        _print_checks(console, result.checks)
        _print_findings(console, result.findings)
        console.print(("[bold green]PASS[/]" if result.ok else "[bold red]FAIL[/]") + f" {args.path} for {result.target}")
    return result.exit_code


def cmd_inspect(args: argparse.Namespace, console: Console) -> int:
    from shrink.commands.models import inspect

    shapes = _shapes(args)
    result = inspect(args.model, target=args.target, shapes=shapes, where=LABELS,
                     registry=_registry() if args.target else None)
    if console.json_mode:
        console.emit_json(result.as_dict())
        return ExitCode.OK
    from shrink.report.inspect_view import render_analysis

    render_analysis(console, result.model, result.analysis)
    if result.checks:
        _print_checks(console, result.checks)
    return ExitCode.OK


# argument parsing and error handling ---------------------------------------------------------------

def _global_flags(parser: argparse.ArgumentParser, default: Any) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", default=default, help="print exactly one JSON object on stdout")
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks and debug logs")
    return parser


def build_parser() -> argparse.ArgumentParser:
    # The global flags are accepted before and after the command (`shrink --json verify`, `shrink verify --json`);
    # a command's copy sets them only when given, so it never resets one given before the command.
    common = _global_flags(argparse.ArgumentParser(add_help=False), argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="shrink", parents=[_global_flags(argparse.ArgumentParser(add_help=False), False)],
        description="A compiler for small models: distill, prune, quantize, fuse and export to fit real devices.",
        epilog="exit codes: 0 ok, 1 internal error, 2 bad input, 3 plugin error, 4 a check failed, 5 a pass failed, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"shrink {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("compile", parents=[common], help="run a recipe and write a bundle")
    p.add_argument("recipe", help="recipe JSON file")
    p.add_argument("--target", "-t", help="target name, alias or profile JSON path (overrides the recipe)")
    p.add_argument("--output", "-o", metavar="DIR", help="bundle directory (default dist/<name>-<target>/)")
    p.add_argument("--shape", action="append", metavar="NAME=1x3x224x224",
                   help="pin a model input's shape (repeatable): its symbolic or -1 dims, or a torch factory's input")
    p.add_argument("--budget", action="append", metavar="KEY=VALUE", help="add or override a budget (repeatable)")
    p.add_argument("--no-cache", action="store_true",
                   help="run every pass, neither reading nor writing the pass cache ($SHRINK_CACHE_DIR, default ~/.cache/shrink)")
    p.add_argument("--strict-cache", action="store_true",
                   help="a pass-cache entry that fails its sha256 check is an error (exit 2), not a recomputed step")
    p.add_argument("--allow-incomplete", nargs="?", const="*", metavar="CHECKS",
                   help="let the analysis checks (or the comma-separated CHECKS: ram, latency, macs, ...) gate on a lower "
                        "bound when the analysis is incomplete, instead of failing with 'cannot verify'")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report (written even when the command fails)")
    p.set_defaults(handler=cmd_compile)

    p = sub.add_parser("plan", parents=[common], help="validate and plan a recipe; run nothing")
    p.add_argument("recipe")
    p.add_argument("--target", "-t")
    p.add_argument("--shape", action="append", metavar="NAME=1x3x224x224",
                   help="pin a model input's shape (repeatable): its symbolic or -1 dims, or a torch factory's input")
    p.set_defaults(handler=cmd_plan)

    p = sub.add_parser("search", parents=[common], help="search a recipe's spaces (Optuna) against the target's checks")
    p.add_argument("recipe", help="recipe JSON file; its $search spaces, or without any the spaces its passes declare")
    p.add_argument("--target", "-t", help="target name, alias or profile JSON path (overrides the recipe)")
    p.add_argument("--trials", "-n", type=int, default=30, help="finished trials the study should hold (default 30)")
    p.add_argument("--objective", action="append", metavar="NAME",
                   help="accuracy, size, loss, latency, macs or ram (repeatable or comma-separated; default accuracy,size,loss)")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="the study (study.db), search.md, front.png, best.json and best/ (default dist/<name>-<target>-search/)")
    p.add_argument("--storage", metavar="URL", help="an Optuna RDB URL (postgresql://..., sqlite:///...) instead of DIR/study.db")
    p.add_argument("--resume", action="store_true", help="continue the study in DIR (or --storage) up to --trials")
    p.add_argument("--sampler", choices=("auto", "tpe", "nsga2", "random"), default="auto",
                   help="auto: TPE, for one objective or several")
    p.add_argument("--budget", action="append", metavar="KEY=VALUE", help="add or override a budget (repeatable)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="run the trials on this Ray cluster (host:port, or 'auto') through Ray Tune, one CPU each; "
                        "needs the ray extra and $SHRINK_CACHE_DIR on a path every node shares")
    p.set_defaults(handler=cmd_search)

    p = sub.add_parser("init", parents=[common], help="write a starter recipe for your own model and data, and plan it")
    p.add_argument("--model", "-m", required=True, help="an .onnx file, a file.py:callable factory, or a model folder")
    p.add_argument("--weights", help="the factory's trained weights (a state_dict file)")
    p.add_argument("--data", "-d", help="samples: a folder of images, a folder of WAV files, a text file of lines, an .npz")
    p.add_argument("--target", "-t", required=True, help="target name, alias or profile JSON path")
    p.add_argument("--shape", action="append", metavar="NAME=1x3x224x224", help="pin a model input's shape (repeatable)")
    p.add_argument("--output", "-o", default="recipe.json", metavar="FILE", help="the recipe to write (default recipe.json)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("verify", parents=[common], help="re-check a bundle (integrity first) or a bare ONNX model")
    p.add_argument("path", help="bundle directory or .onnx file")
    p.add_argument("--target", "-t", help="check against this target instead of the bundle's own (required for a bare model)")
    p.add_argument("--budget", action="append", metavar="KEY=VALUE", help="add or override a budget (repeatable)")
    p.add_argument("--shape", action="append", metavar="NAME=1x3x224x224", help="pin a bare model's dynamic input dimensions")
    p.add_argument("--data", metavar="PATH",
                   help="also score the bundle on labelled data, preprocessed as its manifest records: a folder of images "
                        "or WAV files with one subfolder per label, a JSONL/CSV file of text and labels, or an .npz of "
                        "model inputs and 'labels' (check data_accuracy; --budget accuracy=0.9 gates it)")
    p.add_argument("--allow-incomplete", nargs="?", const="*", metavar="CHECKS",
                   help="let the analysis checks (or the comma-separated CHECKS: ram, latency, macs, ...) gate on a lower "
                        "bound when the analysis is incomplete, instead of failing with 'cannot verify'")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report (written even when the command fails)")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("inspect", parents=[common], help="static analysis of an ONNX model; reports, never gates")
    p.add_argument("model", help=".onnx file")
    p.add_argument("--target", "-t", help="also show the checks against this target")
    p.add_argument("--shape", action="append", metavar="NAME=1x3x224x224", help="pin an input's dynamic dimensions (repeatable)")
    p.set_defaults(handler=cmd_inspect)

    p = sub.add_parser("passes", parents=[common], help="list the installed passes, or describe one and its options")
    p.add_argument("name", nargs="?", help="a pass (or a bare kind: its default pass)")
    p.set_defaults(handler=cmd_passes)

    p = sub.add_parser("targets", parents=[common], help="list target profiles, or show one resolved")
    p.add_argument("name", nargs="?")
    p.set_defaults(handler=cmd_targets)

    p = sub.add_parser("plugins", parents=[common], help="list plugins, what they provide, and failures")
    p.set_defaults(handler=cmd_plugins)

    p = sub.add_parser("cache", help="show, verify, prune or clear the pass cache ($SHRINK_CACHE_DIR)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("info", parents=[common], help="size, entry count, least and most recently used entries")
    actions.add_parser("verify", parents=[common],
                       help="check every entry's files against their recorded sha256 (exit 4 when any is bad)")
    q = actions.add_parser("prune", parents=[common], help="remove least recently used entries")
    q.add_argument("--max-size", metavar="SIZE", help="remove least recently used entries until the cache holds at most "
                                                      "SIZE (2GB, 500MB, 1.5GiB; default $SHRINK_CACHE_MAX_SIZE)")
    q.add_argument("--older-than", metavar="AGE", help="remove entries last used more than AGE ago (30d, 12h, 2w)")
    actions.add_parser("clear", parents=[common], help="remove every entry")
    p.set_defaults(handler=cmd_cache)

    p = sub.add_parser("schema", parents=[common],
                       help="print the JSON Schema of recipes, target profiles or a bundle's preprocessing record")
    p.add_argument("kind", nargs="?", choices=("recipe", "target", "preprocessing"), default="recipe")
    p.set_defaults(handler=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(json_mode=bool(getattr(args, "json", False)), debug=bool(getattr(args, "debug", False)))
    logging.basicConfig(level=logging.DEBUG if console.debug else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        return int(args.handler(args, console))
    except ShrinkError as exc:
        if console.debug:
            traceback.print_exc()
        for problem in exc.problems:
            console.problem(problem)
        _junit_error(args, console, exc.exit_code, exc.problems)
        if console.json_mode:
            console.emit_json(error_dict(exc.exit_code, exc.problems))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        console.err.print("[red]interrupted[/]")
        _junit_error(args, console, ExitCode.INTERRUPTED, [Problem("", "interrupted")])
        if console.json_mode:
            console.emit_json(error_dict(ExitCode.INTERRUPTED, [Problem("", "interrupted")]))
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug: keep the traceback
        traceback.print_exc()
        console.err.print("[bold red]internal error[/]: this is a bug in shrink or a plugin; please report it with the traceback above")
        _junit_error(args, console, ExitCode.INTERNAL, [Problem("", f"internal error: {type(exc).__name__}: {exc}")])
        if console.json_mode:
            console.emit_json(error_dict(ExitCode.INTERNAL, [Problem("", f"internal error: {type(exc).__name__}: {exc}")]))
        return int(ExitCode.INTERNAL)


def run() -> None:
    sys.exit(main())

