"""Keyword-spotting recipe choices made on training speakers only: `recipes/kws-cortex-m4.json` compiled with its eval
split replaced by held-out *training* voices (`--split`: "before", 3 training accents x 5 training variants, or
"matched", 4 x 7 built like the test voices; as `bench/kws_teacher.py` holds them out), once per variant (the
student's width, the options of `distill.kd` and `compress.cluster`, the data's and its `augment`'s; `--teacher`
swaps the teacher's weights for every variant, `--teacher-factory` its
architecture), side by side in one run.

    python bench/kws_validation.py [--eval-per-class 300] [--variant NAME ...] [--teacher PATH] [--teacher-factory NAME]
                                   [--split matched] [--workers 1] [--out /tmp/kws-validation]

Variants with the same student share the passes before `compress.cluster` (the pass cache compiles them once). Printed: the
validation accuracy of the fp32 teacher, of the torch model after each pass and of the int8 bundle, and the
bundle's file size. The recipe's test voices are never loaded, so every choice made here leaves them unseen. The
recipe's teacher was trained on all training voices, validation ones included, which flatters every variant alike
and the teacher itself most; a teacher from `bench/kws_teacher.py --save DIR --split S` (trained without the
validation voices of split S) passed as `--teacher` with the same `--split` keeps them unseen end to end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kws import compile_bundle  # bench/kws.py, beside this script
from kws_teacher import SPLITS  # the validation voices, as bench/kws_teacher.py holds them out

REPO = Path(__file__).resolve().parents[1]
# name -> what the variant changes in the recipe: "student" (a factory in examples/kws/model.py), options merged over
# the recipe's "distill" (distill.kd), "prune" (prune.structured), "cluster" (compress.cluster), "data" (the kws
# source; the validation voices stay) and "augment" (merged over data.augment), and "plain": true drops
# compress.cluster (plain full int8: what weight sharing costs). "before" is the recipe before its last choices: 12
# distillation epochs, 16 shared values in every layer, the shared values fine-tuned alone (Deep Compression's
# fine-tune, `finetune: "centroids"`) where the recipe now trains the weights clustering-aware, 1,500 clips per class
# where it now has 3,000.
CENTROIDS = {"finetune": "centroids"}
BEFORE = {"distill": {"epochs": 12}, "cluster": {"clusters_by_kind": {}, **CENTROIDS}}
VARIANTS: dict[str, dict] = {
    "as written": {},
    "as written, plain int8": {"plain": True},
    "as written, centroids only": {"cluster": CENTROIDS},
    "as written, cluster init density": {"cluster": {"init": "density"}},
    "as written, cluster init linear": {"cluster": {"init": "linear"}},
    "as written, linear 32 values": {"cluster": {"clusters_by_kind": {"linear": 32}}},
    "as written, depthwise 8 values": {"cluster": {"clusters_by_kind": {"depthwise": 8}}},
    "as written, cluster 6 epochs": {"cluster": {"finetune_epochs": 6}},
    "as written, prune 8 epochs": {"prune": {"finetune_epochs": 8}},
    "as written, prune a sixteenth": {"prune": {"ratio": 0.0625}},
    "as written, prune a sixteenth, 8 epochs": {"prune": {"ratio": 0.0625, "finetune_epochs": 8}},
    "as written, distill 40 epochs, prune 8 epochs": {"distill": {"epochs": 40}, "prune": {"finetune_epochs": 8}},
    "as written, 64x4 student, depthwise 8 values": {"student": "wide_student", "cluster": {"clusters_by_kind": {"depthwise": 8}}},
    "as written, 64x4 student, plain int8": {"student": "wide_student", "plain": True},
    "before": BEFORE,
    "before, plain int8": {**BEFORE, "plain": True},
    "before, 48 channels": {**BEFORE, "student": "student"},
    "before, 48 channels, cluster finetune_epochs 8": {"student": "student", "distill": {"epochs": 12},
                                                       "cluster": {"clusters_by_kind": {}, "finetune_epochs": 8, **CENTROIDS}},
    "before, 48 channels, cluster init density": {"student": "student", "distill": {"epochs": 12},
                                                  "cluster": {"clusters_by_kind": {}, "init": "density", **CENTROIDS}},
    "before, cluster finetune_epochs 8": {"distill": {"epochs": 12},
                                          "cluster": {"clusters_by_kind": {}, "finetune_epochs": 8, **CENTROIDS}},
    "before, distill 24 epochs": {"cluster": {"clusters_by_kind": {}, **CENTROIDS}},
    "before, KD temperature 4": {"distill": {"epochs": 12, "temperature": 4.0}, "cluster": {"clusters_by_kind": {}, **CENTROIDS}},
    "before, depthwise 8 values": {"distill": {"epochs": 12}, "cluster": CENTROIDS},
    "before, depthwise 8 values, cluster finetune_epochs 8": {"distill": {"epochs": 12},
                                                              "cluster": {"finetune_epochs": 8, **CENTROIDS}},
    "before, 3000 clips per class": {**BEFORE, "data": {"train_per_class": 3000}},
    "3000 clips per class": {"data": {"train_per_class": 3000}},
    "3000 clips per class, centroids only": {"data": {"train_per_class": 3000}, "cluster": CENTROIDS},
    "3000 clips per class, cluster 8 epochs": {"data": {"train_per_class": 3000}, "cluster": {"finetune_epochs": 8}},
    "3000 clips per class, cluster lr 3e-3": {"data": {"train_per_class": 3000}, "cluster": {"lr": 3e-3}},
    "1500 clips per class": {"data": {"train_per_class": 1500}},
    "1500 clips per class, centroids only": {"data": {"train_per_class": 1500}, "cluster": CENTROIDS},
    "mixup 0.2": {"augment": {"mixup": 0.2}},
    "channel offset 0.3": {"augment": {"channel_offset": 0.3}},
    "mixup 0.2, channel offset 0.3": {"augment": {"mixup": 0.2, "channel_offset": 0.3}},
}
for _name, _variant in VARIANTS.items():
    if _name.startswith("before"):  # the "before" variants predate the recipe's 3,000 clips per class
        _variant.setdefault("data", {"train_per_class": 1500})
    if not _name.startswith("as written"):  # and the others its `init: "density"`, its 96x5 student and 16 values
        # for the depthwise kernels: they had k-means started evenly, the 64x4 student and 8 values (their README rows
        # also had the 64x4 teacher: `--teacher-factory teacher --teacher FILE`)
        _variant["cluster"] = {"init": "linear", "clusters_by_kind": {"depthwise": 8}, **_variant.get("cluster", {})}
        _variant.setdefault("student", "wide_student")


def _validation_recipe(source: Path, eval_per_class: int, out: Path, split: str = "matched",
                       workers: int | None = None) -> dict:
    """The recipe, its paths resolving from `out`, with its data's eval split spoken by held-out training voices."""
    from shrink.plan.load import load_recipe
    from shrink.search.recipes import rebased
    from shrink_data.kws import KwsOptions

    recipe = rebased(json.loads(source.read_text()), load_recipe(source), out)
    data = recipe["data"]
    options = KwsOptions.from_section(data, "source")
    data.update(accents=[a for a in options.accents if a not in options.test_accents],
                variants=[v for v in options.variants if v not in options.test_variants],
                test_accents=SPLITS[split][0], test_variants=SPLITS[split][1], eval_per_class=eval_per_class)
    if workers:
        data["workers"] = workers
    KwsOptions.from_section(data, "source")
    recipe["name"] += "-validation"
    return recipe


def _other_factory(factory: str, name: str) -> str:
    """`factory` ("path:function") with another function of the same file."""
    return f"{factory.rsplit(':', 1)[0]}:{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "kws-cortex-m4.json")
    parser.add_argument("--eval-per-class", type=int, default=300)
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="only these (repeatable)")
    parser.add_argument("--teacher", type=Path, help="teacher weights instead of the recipe's (a state_dict file)")
    parser.add_argument("--teacher-factory", help="the teacher's factory in examples/kws/model.py instead of the recipe's "
                                                  "(e.g. large_teacher, with --teacher)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/kws-validation"))
    parser.add_argument("--split", choices=list(SPLITS), default="matched", help="the validation voices (kws_teacher.py)")
    parser.add_argument("--workers", type=int, default=None, help="synthesis processes (default: the CPU count)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = _validation_recipe(args.recipe, args.eval_per_class, args.out, args.split, args.workers)
    if args.teacher:
        base["model"]["weights"] = str(args.teacher.resolve())
    if args.teacher_factory:
        base["model"]["factory"] = _other_factory(base["model"]["factory"], args.teacher_factory)
    print(f"{'variant':40} {'teacher':>8} {'distill':>8} {'fuse.bn':>8} {'cluster':>8} {'bundle':>8} "
          f"{'bytes':>7} {'seconds':>7}", flush=True)
    for name in args.variant or list(VARIANTS):
        recipe = json.loads(json.dumps(base))
        variant = VARIANTS[name]
        passes = {p["pass"]: p for p in recipe["passes"]}
        distill = passes["distill.kd"]
        if "student" in variant:
            distill["student"]["factory"] = _other_factory(distill["student"]["factory"], variant["student"])
        distill.update(variant.get("distill", {}))
        passes["prune.structured"].update(variant.get("prune", {}))
        passes["compress.cluster"].update(variant.get("cluster", {}))
        recipe["data"].update(variant.get("data", {}))
        if "augment" in variant:
            recipe["data"]["augment"] = {**recipe["data"].get("augment", {}), **variant["augment"]}
        if variant.get("plain"):
            recipe["passes"] = [p for p in recipe["passes"] if p["pass"] != "compress.cluster"]
        path = args.out / f"{name.replace(' ', '_').replace(',', '').replace('(', '').replace(')', '')}.json"
        path.write_text(json.dumps(recipe, indent=1))
        bundle = path.with_suffix("")
        manifest, seconds = compile_bundle(path, bundle)
        steps = {h["name"]: h["metrics"].get("accuracy") for h in manifest["history"]}
        size = (bundle / "model.tflite").stat().st_size
        cells = [steps.get("source:torch"), steps.get("distill.kd"), steps.get("fuse.bn"), steps.get("compress.cluster"),
                 manifest["metrics"]["accuracy"]]
        print(f"{name:40} " + " ".join(f"{c:>8.2%}" if c is not None else f"{'':>8}" for c in cells)
              + f" {size:>7} {seconds:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
