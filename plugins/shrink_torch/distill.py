"""`distill.kd`: Hinton logit distillation from the current model (the teacher) into a smaller student."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, Pass, PassOptions, PlanContext
from shrink.api.factory import FACTORY_PATTERN, check_factory
from shrink_common.capabilities import KDTeacher
from shrink_common.options import TrainingOptions
from shrink_torch.family import TorchFamily


class StudentSpec(PassOptions):
    """The student architecture: a factory returning a fresh nn.Module."""

    factory: str = Field(pattern=FACTORY_PATTERN, description="'package.module:callable' or 'path/to/file.py:callable' "
                         "(relative to the recipe) returning the untrained student nn.Module")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for the factory")


class DistillKDOptions(TrainingOptions):
    """Options of the `distill.kd` pass."""

    search_space = {"epochs": {"choice": [15, 30, 60]}}  # few values, so search trials share the distilled student

    student: StudentSpec | SkipJsonSchema[None] = Field(None, description="the student's factory; or give 'width' instead")
    width: Annotated[float, Field(gt=0, lt=1)] | SkipJsonSchema[None] = Field(None, description="student = the teacher with every hidden layer's "
                                "channels scaled by this (torch-pruning; output layer kept); instead of 'student'")
    init: Literal["teacher", "random"] | SkipJsonSchema[None] = Field(None, description="with 'width': start from the teacher's "
                                                      "largest-magnitude channels ('teacher', default) or re-initialise ('random')")
    round_to: Annotated[int, Field(ge=1, le=256)] | SkipJsonSchema[None] = Field(None, description="with 'width': keep channel counts a multiple of this")
    epochs: int = Field(10, ge=1, le=1000, description="training epochs")
    compare_scratch: bool = Field(False, description="also train the same student without the teacher "
                                  "(cross-entropy only, same init and epochs) and report both accuracies")

    @model_validator(mode="after")
    def _consistent(self) -> DistillKDOptions:
        if (self.student is None) == (self.width is None):
            raise ValueError("give exactly one of 'student' (a factory) and 'width' (a fraction of the teacher's channels)")
        if self.student is not None:
            for key in ("init", "round_to"):
                if getattr(self, key) is not None:
                    raise ValueError(f"'{key}' applies only to a 'width' student")
        if self.alpha == 0 and "temperature" in self.model_fields_set:
            raise ValueError("temperature has no effect with alpha 0 (no KD term)")
        return self


class DistillKD(Pass[DistillKDOptions]):
    """Train a smaller student on the teacher's softened logits (Hinton KD) plus the labels."""

    name = "distill.kd"
    consumes = ("torch",)
    produces = "torch"
    requires = frozenset({"train", "labels"})
    default = True

    def check(self, plan: PlanContext) -> list[str]:
        opts = self.options
        if not isinstance(plan.family, KDTeacher):
            problems = [f"{plan.family.name} models cannot teach distill.kd (the family has no logit-KD teacher)"]
        else:
            problems = plan.family.check_distillation(plan, width_student=opts.width is not None)
        if opts.student is not None:
            problem = check_factory(opts.student.factory, plan.recipe.base_dir)
            problems += [f"student: {problem}"] if problem else []
        return problems

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import copy
        import dataclasses

        import torch

        from shrink.api.data import labelled_eval
        from shrink.api.factory import load_factory
        from shrink_common import distributed
        from shrink_common.channels import prune_channels
        from shrink_common.classifier import count_macs, data_augment, evaluate, split_tensors, train
        from shrink_common.torch_setup import count_params, setup_torch
        from shrink_common.training import TrainConfig
        from shrink_common.widths import record_shapes
        from shrink_torch.fuse import fused_for_inference
        from shrink_torch.prune import check_rebuild

        opts = self.options
        seed = ctx.seed + opts.seed
        setup_torch(seed)
        distributed.init(opts.batch_size, f"{self.name}: batch_size")
        x, y = split_tensors(ctx.require_data("train", self.name), self.name)
        example = x[:1]
        evaluation = labelled_eval(ctx.data)
        teacher_model: torch.nn.Module = artifact.model
        teacher_model.eval()
        with torch.no_grad():
            teacher_shape = tuple(teacher_model(example).shape)

        meta: dict[str, Any]
        ctx.report(0.02, "building the student")
        torch.manual_seed(seed)
        if opts.student is not None:
            student = load_factory(opts.student.factory, ctx.recipe.base_dir)(**opts.student.kwargs)
            if not isinstance(student, torch.nn.Module):
                raise TypeError(f"student factory {opts.student.factory!r} returned {type(student).__name__}, not a torch.nn.Module")
            student.eval()
            meta = {"factory": opts.student.factory, "factory_kwargs": dict(opts.student.kwargs),
                    "pruned_shapes": None, "fused_bn": None}
            how = opts.student.factory
        else:
            student = copy.deepcopy(teacher_model).eval()
            prune_channels(student, example, 1.0 - opts.width, round_to=opts.round_to, max_layer_ratio=1.0)
            if (opts.init or "teacher") == "random":
                torch.manual_seed(seed)
                for module in student.modules():
                    if hasattr(module, "reset_parameters") and module is not student:
                        module.reset_parameters()
            meta = {"pruned_shapes": record_shapes(student)}
            how = f"width {opts.width} of the teacher ({opts.init or 'teacher'} init)"
        with torch.no_grad():
            student_shape = tuple(student.eval()(example).shape)
        if student_shape != teacher_shape:
            raise ValueError(f"the student's output shape {student_shape} differs from the teacher's {teacher_shape}")
        initial = copy.deepcopy(student) if opts.compare_scratch else None

        cfg = TrainConfig(epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, optimizer=opts.optimizer,
                          weight_decay=opts.weight_decay, schedule=opts.schedule, augment=opts.augment,
                          max_shift=opts.max_shift, temperature=opts.temperature, alpha=opts.alpha,
                          feature_augment=data_augment(ctx.data, opts.augment))
        fast_teacher = fused_for_inference(teacher_model)
        share = (0.05, 0.6 if initial is not None else 0.97)
        # under torchrun the student is complete here (pruned to 'width'); train() wraps it, never the teacher
        result = train(student, x, y, cfg, seed, teacher=fast_teacher, report=ctx.report, label="distilling", progress=share,
                       parallel=True)
        details: dict[str, Any] = {
            "student": how, "teacher_params": count_params(teacher_model), "student_params": count_params(student),
            "teacher_macs": count_macs(teacher_model, example), "student_macs": count_macs(student, example),
            "temperature": opts.temperature, "alpha": opts.alpha, "epochs": opts.epochs,
            "train_seconds": round(result.seconds, 3), "final_loss": result.final_loss,
            "teacher_accuracy": evaluate(teacher_model, evaluation, parallel=True),
            "accuracy": evaluate(student, evaluation, parallel=True),
        }
        if initial is not None:
            baseline = train(initial, x, y, dataclasses.replace(cfg, alpha=0.0), seed, report=ctx.report, label="training without the teacher",
                             progress=(0.6, 0.97), parallel=True)
            details["accuracy_without_teacher"] = evaluate(initial, evaluation, parallel=True)
            if details["accuracy"] is not None and details["accuracy_without_teacher"] is not None:
                details["kd_gain"] = round(details["accuracy"] - details["accuracy_without_teacher"], 6)
            details["baseline_seconds"] = round(baseline.seconds, 3)
        if opts.width is not None:
            details["rebuild"] = check_rebuild(student, artifact, ctx, meta["pruned_shapes"])
        # a factory's student is a torch-family model whatever taught it; a 'width' student stays in the teacher's family
        family = TorchFamily.name if opts.student is not None else artifact.family
        if distributed.active():
            details["ranks"] = distributed.world()
        distributed.barrier()  # every rank is done before rank 0 stores the result
        return artifact.evolve(model=student.eval(), meta=meta, details=details, family=family)
