"""The uncached TinyBERT compile, before and after: an older commit's code (default `main`) and this tree's, in one run.

    python bench/tinybert_time.py [--before main] [--recipe recipes/minilm-tinybert.json] [--sequential]
                                  [--out dist/bench-tinybert-time] [--keep-cache DIR]

The older code is `git archive`d into a temporary folder and imported from there (each package folder linked
under its import name, as its pyproject.toml maps them; `python -P`, so neither side imports the other's files);
this tree's code is the installed one. Each side compiles its own copy of the recipe with `shrink compile` into
an empty pass cache of its own, so everything runs: the source, the distillation and the passes after it. By
default both run at once (one torch thread each, on a machine shared with other jobs both see the same load; the
side that finishes first leaves the other the machine, which favours the later one); `--sequential` runs them
one after the other instead. Reported per side: wall time of the compile process, the distillation's own time
and split (from the manifest), the process's CPU time and peak resident memory (`wait4`: with one torch thread the
CPU time is what the wall time would be alone on a core, whatever else runs), and the bundle's held-out cosine
and Spearman to the teacher (per held-out source too). Goal (issue 19): after ≤ 60% of before's wall time at a
held-out cosine at most 0.005 lower. `--keep-cache DIR` keeps the after side's pass cache there (a later
`bench/minilm.py` with `SHRINK_CACHE_DIR=DIR` restores the distillation).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def archive(ref: str, dest: Path) -> str:
    """`ref`'s tree extracted into `dest`; returns its commit."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", ref], capture_output=True, text=True, check=True).stdout.strip()
    tar = dest.parent / "before.tar"
    with open(tar, "wb") as out:
        subprocess.run(["git", "-C", str(REPO), "archive", commit], stdout=out, check=True)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    tar.unlink()
    return commit


def import_path(tree: Path, dest: Path) -> Path:
    """A folder where each package of `tree` appears under its import name (its pyproject's package-dir)."""
    mapping = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    dest.mkdir(parents=True)
    for name, folder in mapping.items():
        (dest / name).symlink_to(tree / folder, target_is_directory=True)
    return dest


def foreign_plugins(tree: Path) -> str:
    """The installed `shrink` entry points whose package `tree` lacks, comma-separated.

    The entry points are this tree's (the installed distribution's); one whose package the older tree does not have
    would be imported from this tree, beside the older core, so the before side disables it.
    """
    from importlib import metadata

    mapping = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return ",".join(sorted(ep.name for ep in metadata.entry_points(group="shrink")
                           if ep.value.split(":")[0].split(".")[0] not in mapping))


class Side:
    """One compile: which code, where it writes, and what it measured."""

    def __init__(self, label: str, recipe: Path, out: Path, cache: Path, pythonpath: Path | None,
                 disabled: str = "") -> None:
        self.label, self.recipe, self.out, self.cache, self.pythonpath = label, recipe, out, cache, pythonpath
        self.disabled = disabled
        self.seconds = 0.0
        self.peak_rss = 0
        self.cpu_seconds = 0.0
        self.code = -1

    def start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "SHRINK_CACHE_DIR": str(self.cache)}
        env.pop("PYTHONPATH", None)
        if self.pythonpath is not None:
            env["PYTHONPATH"] = str(self.pythonpath)
        if self.disabled:
            env["SHRINK_DISABLE_PLUGINS"] = self.disabled
        self.log = open(self.out.parent / f"{self.label}.log", "wb")  # noqa: SIM115 - closed in finish()
        self.started = time.perf_counter()
        return subprocess.Popen([sys.executable, "-P", "-m", "shrink", "compile", str(self.recipe), "-o", str(self.out), "--json"],
                                env=env, cwd=self.out.parent, stdout=self.log, stderr=subprocess.STDOUT)

    def finish(self, proc: subprocess.Popen[bytes], waited: tuple[int, int, Any] | None = None) -> None:
        """Record the side's exit: `waited` is what `os.wait4` returned for it, else it is waited for here."""
        _, status, usage = waited or os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.seconds = time.perf_counter() - self.started
        self.peak_rss = usage.ru_maxrss * 1024
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        self.code = proc.returncode
        self.log.close()

    def result(self) -> dict[str, Any]:
        if self.code not in (0, 4):
            sys.exit(f"the {self.label} compile failed (exit {self.code}); see {self.out.parent / (self.label + '.log')}")
        manifest = json.loads((self.out / "manifest.json").read_text())
        step = next(h for h in manifest["history"] if h["name"] == "distill.tinybert")
        details, metrics = step.get("details", {}), manifest["metrics"]
        return {"wall_seconds": round(self.seconds, 1), "cpu_seconds": round(self.cpu_seconds, 1),
                "distill_seconds": details.get("train_seconds"),
                "time_split_seconds": details.get("time_split_seconds"), "teacher_cache": details.get("teacher_cache"),
                "precision": details.get("precision"), "optimizer": details.get("optimizer"),
                "peak_rss_bytes": self.peak_rss, "cosine": metrics.get("cosine"), "spearman": metrics.get("spearman"),
                **{k: v for k, v in metrics.items() if k.startswith("cosine_")},
                "student_cosine": step.get("metrics", {}).get("cosine")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="git ref of the code to compare against (default: main)")
    parser.add_argument("--recipe", default="recipes/minilm-tinybert.json",
                        help="recipe path inside both trees (an absolute path: that file for both)")
    parser.add_argument("--sequential", action="store_true", help="run the two compiles one after the other")
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "bench-tinybert-time")
    parser.add_argument("--keep-cache", type=Path, help="keep the after side's pass cache in this folder")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tinybert-time-") as tmp:
        work = Path(tmp)
        tree = work / "before-tree"
        commit = archive(args.before, tree)
        after_cache = args.keep_cache or work / "cache-after"
        if after_cache.exists():
            shutil.rmtree(after_cache)
        disabled = foreign_plugins(tree)
        sides = [Side("before", tree / args.recipe, args.out / "before", work / "cache-before", import_path(tree, work / "path"),
                      disabled),
                 Side("after", REPO / args.recipe, args.out / "after", after_cache, None)]  # an absolute recipe: both
        for side in sides:
            shutil.rmtree(side.out, ignore_errors=True)
        load = os.getloadavg()
        if args.sequential:
            for side in sides:
                side.finish(side.start())
        else:
            running = {proc.pid: (side, proc) for side in sides for proc in [side.start()]}
            while running:  # each side's wall time ends when it exits, whichever exits first
                pid, status, usage = os.wait4(-1, 0)
                if pid in running:
                    side, proc = running.pop(pid)
                    side.finish(proc, (pid, status, usage))
        load_after = os.getloadavg()
    results = {side.label: side.result() for side in sides}
    before, after = results["before"], results["after"]
    ratio = after["wall_seconds"] / before["wall_seconds"]
    drop = before["cosine"] - after["cosine"]
    print(f"before: {args.before} ({commit[:12]}); after: this tree; {'sequential' if args.sequential else 'at once'}; "
          f"load average {load[0]:.1f} at the start, {load_after[0]:.1f} at the end ({os.cpu_count()} CPUs)"
          + (f"; plugins the older tree lacks, disabled on its side: {disabled}" if disabled else ""))
    groups = sorted(k for k in before if k.startswith("cosine_"))
    print("| | wall s | CPU s | distillation s | peak RSS | held-out cosine | Spearman | " + " | ".join(groups) + " |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(groups))
    for label, r in results.items():
        print(f"| {label} | {r['wall_seconds']:.0f} | {r['cpu_seconds']:.0f} | {r['distill_seconds']:.0f} | "
              f"{r['peak_rss_bytes'] / 2**30:.2f} GiB | "
              f"{r['cosine']:.4f} | {r['spearman']:.4f} | " + " | ".join(f"{r[g]:.4f}" for g in groups) + " |")
    for label, r in results.items():
        print(f"{label}: split {r['time_split_seconds']}; teacher cache: {r['teacher_cache']}; precision: {r['precision']}; "
              f"optimizer: {r['optimizer']}")
    met = ratio <= 0.60 and drop <= 0.005
    print(f"after / before CPU time: {after['cpu_seconds'] / before['cpu_seconds']:.1%}")
    print(f"after / before wall time: {ratio:.1%}; held-out cosine {after['cosine']:.4f} vs {before['cosine']:.4f} "
          f"({-drop:+.4f}); goal (≤60%, cosine at most 0.005 lower): {'met' if met else 'not met'}")
    (args.out / "results.json").write_text(json.dumps({"before_ref": args.before, "before_commit": commit,
                                                       "sequential": args.sequential, "load_average": [load, load_after],
                                                       "results": results, "ratio": ratio, "cosine_drop": drop,
                                                       "goal_met": met}, indent=2))


if __name__ == "__main__":
    main()
