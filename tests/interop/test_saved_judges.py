"""Judges saved by Spyglass's evaluations (`evaluation.judges.save_judge`) read back by the real
mlflow client as make_judge judges (`list_scorers`, `get_scorer`), and a judge the client
registered run by Spyglass on an endpoint given at load time."""

from __future__ import annotations

from evaluation.judges import load_judge, save_judge
from evaluation.scorers import ScorerSpec
from tracking.models import Experiment

INSTRUCTIONS = "Is {{ outputs }} a correct answer to {{ inputs }}? Expected: {{ expectations }}"

READ_SCRIPT = """
    from mlflow.genai.scorers import get_scorer, list_scorers

    mlflow.set_experiment("judged")
    listed = list_scorers()
    latest = get_scorer(name="correct")
    first = get_scorer(name="correct", version=1)
    tone = get_scorer(name="tone")
    scale = get_scorer(name="scale")
    result({
        "listed": sorted([s.name, type(s).__name__] for s in listed),
        "latest": [latest.instructions, latest.model, str(latest.feedback_value_type)],
        "first_model": first.model,
        "tone": str(tone.feedback_value_type),
        "scale": str(scale.feedback_value_type),
        "template_variables": sorted(latest.template_variables),
    })
"""

REGISTER_SCRIPT = """
    from typing import Literal

    from mlflow.genai.judges import make_judge

    mlflow.set_experiment("judged")
    make_judge(
        name="client-judge",
        instructions="Is {{ outputs }} polite?",
        feedback_value_type=Literal["yes", "no"],
        model="openai:/gpt-4o-mini",
    ).register(name="client-judge")
    result("registered")
"""


def judge(**config) -> ScorerSpec:
    config = {"url": "http://127.0.0.1:9/v1", "instructions": INSTRUCTIONS, **config}
    return ScorerSpec.from_config({"kind": "judge", "name": "correct", "config": config})


def test_the_client_reads_judges_spyglass_saved(run_mlflow):
    experiment = Experiment.objects.create(name="judged")
    assert save_judge(experiment, "correct", judge(model="small")) == 1
    assert save_judge(experiment.pk, "correct", judge(model="large", temperature=0)) == 2
    save_judge(experiment, "tone", judge(output="label", labels=["polite", "rude"]))
    save_judge(experiment, "scale", judge(output="number", min=1, max=5))

    (found,) = run_mlflow(READ_SCRIPT)
    assert found == {
        "listed": [["correct", "InstructionsJudge"], ["scale", "InstructionsJudge"],
                   ["tone", "InstructionsJudge"]],
        "latest": [INSTRUCTIONS, "openai:/large", "<class 'bool'>"],
        "first_model": "openai:/small",
        "tone": "typing.Literal['polite', 'rude']",
        "scale": "<class 'float'>",
        "template_variables": ["expectations", "inputs", "outputs"],
    }  # fmt: skip
    # ... and Spyglass reads them back as it saved them.
    first = load_judge(experiment, "correct", version=1)
    assert first.config == {**judge(model="small").config, "output": "pass_fail"}
    assert load_judge(experiment, "correct").config["temperature"] == 0
    assert load_judge(experiment, "scale").config | {"url": ""} == {
        "url": "", "instructions": INSTRUCTIONS, "output": "number", "min": 1, "max": 5,
    }  # fmt: skip


def test_spyglass_runs_a_judge_the_client_registered_on_an_endpoint_it_is_given(run_mlflow):
    assert run_mlflow(REGISTER_SCRIPT) == ["registered"]
    experiment = Experiment.objects.get(name="judged")
    spec = load_judge(experiment, "client-judge", endpoint={"url": "http://127.0.0.1:9/v1"})
    assert spec.config == {
        "url": "http://127.0.0.1:9/v1",
        "instructions": "Is {{ outputs }} polite?",
        "output": "label",
        "labels": ["yes", "no"],
    }
