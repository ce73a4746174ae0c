"""The form that launches an evaluation: a dataset, 1-4 agents, scorers.

Each built-in scorer is a checkbox with the few settings it takes; judges are either saved
ones (MLflow scorers of the experiment) or a new one written here, saved as a new version when
the evaluation launches. Everything becomes `ScorerSpec`s, checked by the scorer library
itself (evaluation/scorers.py), so a bad setting is an inline error on its field.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from evaluation import runner
from evaluation.scorers import JUDGE, ScorerSpec, SpecError
from playground.models import Agent, AgentKind
from tracking.models import EvaluationDataset, Experiment

AGENT_SLOTS = runner.MAX_AGENTS

# (kind, label, the settings it shows: (config key, label, kind of field, default)).
BUILT_IN: list[tuple[str, str, list[tuple[str, str, str, Any]]]] = [
    ("exact_match", "Exact match", [("expectation", "Expectation", "text", "expected_response")]),
    ("contains", "Contains", [("text", "Text", "text", "")]),
    ("regex", "Matches regex", [("pattern", "Pattern", "text", "")]),
    ("json", "Valid JSON", [("schema", "JSON Schema (optional)", "json", "")]),
    (
        "custom_output",
        "custom_outputs field",
        [("path", "Path", "text", ""), ("expected", "Expected (JSON)", "json", "")],
    ),
    ("latency", "Latency under", [("max_ms", "ms", "number", 2000)]),
    ("tokens", "Tokens under", [("max_tokens", "tokens", "number", 2000)]),
    ("cost", "Cost under", [("max_cost", "dollars", "number", 0.01)]),
]
JUDGE_OUTPUTS = [
    ("pass_fail", "Pass / fail"),
    ("number", "Number in a range"),
    ("label", "One of N labels"),
]
DEFAULT_INSTRUCTIONS = (
    "Is the answer correct and complete for the question?\n\n"
    "Question: {{ inputs }}\nAnswer: {{ outputs }}\nExpected: {{ expectations }}"
)


class LaunchForm(forms.Form):
    dataset = forms.ModelChoiceField(
        queryset=EvaluationDataset.objects.none(), to_field_name="dataset_id"
    )
    experiment = forms.ModelChoiceField(
        queryset=Experiment.objects.none(),
        help_text="Where the evaluation runs and their traces are written.",
    )
    name = forms.CharField(max_length=200, required=False)
    judge_name = forms.CharField(max_length=100, required=False, label="Judge name")
    judge_instructions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        initial=DEFAULT_INSTRUCTIONS,
        label="Judge prompt",
        help_text="{{ inputs }}, {{ outputs }} and {{ expectations }} are filled in per row.",
    )
    judge_agent = forms.ModelChoiceField(
        queryset=Agent.objects.filter(kind=AgentKind.OPENAI),
        required=False,
        label="Judge endpoint",
        help_text="An OpenAI-compatible playground agent answers as the judge.",
    )
    judge_output = forms.ChoiceField(choices=JUDGE_OUTPUTS, initial="pass_fail", label="Output")
    judge_labels = forms.CharField(required=False, label="Labels (comma-separated)")
    judge_min = forms.FloatField(required=False, initial=1, label="From")
    judge_max = forms.FloatField(required=False, initial=5, label="To")
    saved_judges = forms.MultipleChoiceField(required=False, label="Saved judges")
    scorers_json = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        label="More scorers (JSON)",
        help_text='A list of {"kind", "name", "config"}: any scorer the fields above cannot say.',
    )

    def __init__(self, *args: Any, datasets: Any, experiments: Any, saved_judges: list[str],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
        self.fields["experiment"].queryset = experiments
        self.fields["saved_judges"].choices = [(name, name) for name in saved_judges]
        agents = Agent.objects.order_by("name")
        for slot in range(AGENT_SLOTS):
            self.fields[f"agent_{slot}"] = forms.ModelChoiceField(
                queryset=agents, required=slot == 0, label=f"Agent {slot + 1}"
            )
            self.fields[f"rate_{slot}"] = forms.FloatField(
                required=False, min_value=0.01, max_value=10_000, label="Calls/s"
            )
        for kind, label, settings in BUILT_IN:
            self.fields[f"use_{kind}"] = forms.BooleanField(required=False, label=label)
            for key, setting_label, shape, default in settings:
                field: forms.Field
                if shape == "number":
                    field = forms.FloatField(required=False, initial=default, label=setting_label)
                else:
                    field = forms.CharField(required=False, initial=default, label=setting_label)
                self.fields[f"{kind}__{key}"] = field

    # What the template loops over.
    def agent_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [(self[f"agent_{i}"], self[f"rate_{i}"]) for i in range(AGENT_SLOTS)]

    def built_in_rows(self) -> list[tuple[forms.BoundField, list[forms.BoundField]]]:
        return [
            (self[f"use_{kind}"], [self[f"{kind}__{key}"] for key, *_ in settings])
            for kind, _label, settings in BUILT_IN
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        chosen = [
            (data.get(f"agent_{i}"), data.get(f"rate_{i}"))
            for i in range(AGENT_SLOTS)
            if data.get(f"agent_{i}") is not None
        ]
        if len({agent.pk for agent, _ in chosen}) != len(chosen):
            self.add_error(None, "Each agent may be chosen once.")
        data["agents"] = [runner.AgentChoice(agent, rate) for agent, rate in chosen]
        specs: list[dict[str, Any]] = []
        for kind, _label, settings in BUILT_IN:
            if not data.get(f"use_{kind}"):
                continue
            config = {}
            for key, _setting_label, shape, _default in settings:
                value = data.get(f"{kind}__{key}")
                if value in (None, ""):
                    continue
                if shape == "json":
                    try:
                        value = json.loads(value)
                    except ValueError as error:
                        self.add_error(f"{kind}__{key}", f"Not JSON: {error}.")
                        continue
                config[key] = value
            if kind == "custom_output" and "expected" not in config:
                config["present"] = True
            specs.append(
                self._checked({"kind": kind, "name": kind, "config": config}, f"use_{kind}")
            )
        judge = self._new_judge(data)
        if judge is not None:
            specs.append(judge)
        data["saved"] = list(data.get("saved_judges") or [])
        specs += self._more(data.get("scorers_json") or "")
        names = [s["name"] for s in specs if s] + data["saved"]
        if len(set(names)) != len(names):
            self.add_error(None, "Two scorers have the same name: rename one (the JSON's).")
        if not names:
            self.add_error(None, "Choose at least one scorer or judge.")
        data["scorer_specs"] = [s for s in specs if s]
        data["new_judge"] = judge
        return data

    def _checked(self, spec: dict[str, Any], field: str | None) -> dict[str, Any]:
        try:
            return ScorerSpec.from_config(spec).as_config()
        except SpecError as error:
            self.add_error(field, str(error))
            return {}

    def _new_judge(self, data: dict[str, Any]) -> dict[str, Any] | None:
        name = (data.get("judge_name") or "").strip()
        if not name:
            return None
        agent = data.get("judge_agent")
        if agent is None:
            self.add_error("judge_agent", "Choose the endpoint that answers as the judge.")
            return None
        config: dict[str, Any] = {
            "instructions": data.get("judge_instructions") or "",
            "agent": agent.name,
            "output": data.get("judge_output") or "pass_fail",
        }
        if config["output"] == "label":
            config["labels"] = [
                x.strip() for x in (data.get("judge_labels") or "").split(",") if x.strip()
            ]
        if config["output"] == "number":
            config["min"], config["max"] = data.get("judge_min"), data.get("judge_max")
        return self._checked({"kind": JUDGE, "name": name, "config": config}, "judge_name") or None

    def _more(self, text: str) -> list[dict[str, Any]]:
        if not text.strip():
            return []
        try:
            parsed = json.loads(text)
        except ValueError as error:
            self.add_error("scorers_json", f"Not JSON: {error}.")
            return []
        if not isinstance(parsed, list):
            self.add_error("scorers_json", "A JSON list of scorers, please.")
            return []
        return [self._checked(item, "scorers_json") for item in parsed[:20]]
