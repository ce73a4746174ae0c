"""Judges saved as MLflow scorers: what is stored (never a key), versions, and loading errors.
(tests/interop/test_saved_judges.py reads them with the real mlflow client.)"""

from __future__ import annotations

import json

import pytest

from evaluation.judges import load_judge, save_judge
from evaluation.scorers import ScorerSpec, SpecError
from tracking.models import Experiment, Scorer, ScorerVersion

pytestmark = pytest.mark.django_db

INSTRUCTIONS = "Is {{ outputs }} right?"


def spec(**config) -> ScorerSpec:
    config = {"instructions": INSTRUCTIONS, **config}
    return ScorerSpec.from_config({"kind": "judge", "name": "ignored", "config": config})


def test_a_saved_judge_names_its_agent_and_never_its_key(settings):
    from cryptography.fernet import Fernet

    from playground.models import Agent

    settings.SPYGLASS_SECRETS_KEY = Fernet.generate_key().decode()
    agent = Agent.objects.create(name="grader", kind="openai",
                                 config={"url": "http://127.0.0.1:9/v1", "model": "m"})  # fmt: skip
    agent.set_api_key("sk-very-secret")
    experiment = Experiment.objects.create(name="e")
    assert save_judge(experiment, "graded", spec(agent="grader")) == 1
    stored = ScorerVersion.objects.get(scorer__name="graded").serialized_scorer
    assert "sk-very-secret" not in stored
    data = json.loads(stored)
    assert data["name"] == "graded"
    assert data["instructions_judge_pydantic_data"] == {
        "instructions": INSTRUCTIONS,
        "model": "openai:/m",
        "feedback_value_type": {"type": "boolean"},
        "spyglass": {"endpoint": {"agent": "grader"}},
    }
    assert load_judge(experiment, "graded").config == {
        "agent": "grader", "instructions": INSTRUCTIONS, "output": "pass_fail",
    }  # fmt: skip


def test_only_judges_with_good_names_are_saved():
    experiment = Experiment.objects.create(name="e")
    url = "http://127.0.0.1:9/v1"
    with pytest.raises(SpecError, match="cannot name a judge"):
        save_judge(experiment, "a/mean", spec(url=url))
    latency = ScorerSpec.from_config({"kind": "latency", "config": {"max_ms": 5}})
    with pytest.raises(SpecError, match="Only judges"):
        save_judge(experiment, "fast", latency)
    assert not Scorer.objects.exists()


def test_loading_what_is_not_a_runnable_judge_says_why():
    experiment = Experiment.objects.create(name="e")
    with pytest.raises(SpecError, match="There is no judge 'nope' version 3"):
        load_judge(experiment, "nope", version=3)
    custom = {"name": "short", "call_source": "return True", "call_signature": "(outputs)",
              "original_func_name": "short"}  # fmt: skip
    Scorer.register(experiment.pk, "short", json.dumps(custom))
    with pytest.raises(SpecError, match="not a judge with instructions"):
        load_judge(experiment, "short")
    client_judge = {"name": "j", "instructions_judge_pydantic_data": {
        "instructions": INSTRUCTIONS, "model": "openai:/gpt-4o",
        "feedback_value_type": {"type": "number"}}}  # fmt: skip
    Scorer.register(experiment.pk, "j", json.dumps(client_judge))
    with pytest.raises(SpecError, match="without an endpoint"):
        load_judge(experiment, "j")
    with pytest.raises(SpecError, match="number with no range"):
        load_judge(experiment, "j", endpoint={"url": "http://127.0.0.1:9/v1"})
