"""The playground's forms: sending a message (with parameters and custom_inputs), starting a
chat with 1-4 agents. The agent's settings are in `agent_form`."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from playground.models import Agent, Role

MAX_AGENTS = 4


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """A JSON object from text, or a ValidationError that says where the text goes wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(value), "a number"
        )
        raise forms.ValidationError(f"{what} must be a JSON object ({{...}}), not {kind}.")
    return value


class SendForm(forms.Form):
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), strip=True)
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
    stop = forms.CharField(required=False, help_text="One stop sequence per line.",
                           widget=forms.Textarea(attrs={"rows": 1}), strip=False)  # fmt: skip
    custom_inputs_enabled = forms.BooleanField(required=False, label="custom_inputs")
    custom_inputs = forms.CharField(
        required=False, strip=True, widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"})
    )
    # Earlier turns replayed from a trace, as JSON; sent once, with the first message.
    history = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_custom_inputs(self) -> dict[str, Any] | None:
        text = self.cleaned_data["custom_inputs"]
        if not self.cleaned_data.get("custom_inputs_enabled"):
            return None
        return parse_json_object(text or "{}", "custom_inputs")

    def clean_stop(self) -> list[str]:
        return [line for line in (self.cleaned_data["stop"] or "").splitlines() if line]

    def clean_history(self) -> list[dict[str, str]]:
        text = self.cleaned_data["history"]
        if not text:
            return []
        try:
            turns = json.loads(text)
        except ValueError:
            raise forms.ValidationError("The replayed history is not valid JSON.") from None
        if not isinstance(turns, list) or not all(
            isinstance(t, dict)
            and t.get("role") in Role.values
            and isinstance(t.get("content"), str)
            for t in turns
        ):
            raise forms.ValidationError("The replayed history must be user/assistant turns.")
        return [{"role": t["role"], "content": t["content"]} for t in turns]

    def params(self) -> dict[str, Any]:
        data = self.cleaned_data
        params: dict[str, Any] = {}
        if data.get("temperature") is not None:
            params["temperature"] = data["temperature"]
        if data.get("max_tokens") is not None:
            params["max_tokens"] = data["max_tokens"]
        if data.get("stop"):
            params["stop"] = data["stop"]
        return params

    def carried_over(self) -> dict[str, Any]:
        """What the next message starts with: the same parameters and custom_inputs."""
        data = self.cleaned_data
        return {
            "temperature": data.get("temperature"),
            "max_tokens": data.get("max_tokens"),
            "stop": "\n".join(data.get("stop") or []),
            "custom_inputs_enabled": data.get("custom_inputs_enabled"),
            "custom_inputs": self.data.get("custom_inputs", ""),
        }


class NewChatForm(SendForm):
    agents = forms.ModelMultipleChoiceField(
        queryset=Agent.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        help_text="One agent to chat, 2-4 to compare them side by side.",
    )
    system_prompt = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    field_order = ["agents", "system_prompt", "message"]

    def clean_agents(self) -> Any:
        agents = self.cleaned_data["agents"]
        if len(agents) > MAX_AGENTS:
            raise forms.ValidationError(f"Compare at most {MAX_AGENTS} agents at a time.")
        return agents


class ConversationTitleForm(forms.Form):
    title = forms.CharField(max_length=200, strip=True)


class JSONObjectField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value, indent=2) if value else ""  # empty: the example shows
        return value

    def to_python(self, value: Any) -> dict[str, Any]:
        text = super().to_python(value)
        return parse_json_object(text or "{}", self.label or "The value")


class ReplayForm(forms.Form):
    """Replay a logged session: which agents answer its user turns again."""

    agents = forms.ModelMultipleChoiceField(
        queryset=Agent.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        help_text="One agent, or 2-4 to compare them turn by turn.",
    )

    def clean_agents(self) -> Any:
        agents = self.cleaned_data["agents"]
        if len(agents) > MAX_AGENTS:
            raise forms.ValidationError(f"Compare at most {MAX_AGENTS} agents at a time.")
        return agents
