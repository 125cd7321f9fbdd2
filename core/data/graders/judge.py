"""`judge:RUBRIC`, declared here so that parsing, help and docs know it. It grades with a model, which the data
layer has not got: evals build it (core/evals/judge.py) and `parse_grader` refuses it."""

from core.data.graders._registry import GraderKind, register

JUDGE = register(
    GraderKind(
        "judge",
        "judge:RUBRIC",
        "a judge model says it meets the rubric (text, or a file; needs --judge)",
        needs_model=True,
        module=__name__,
    )
)
