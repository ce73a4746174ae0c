"""The playground's forms: sending a message (with parameters and custom_inputs), starting a
chat with 1-4 agents, and an agent's settings."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django import forms
from django.db import transaction

from playground.agents import logged_model
from playground.agents.base import AgentError
from playground.agents.logged_model import check_model_uri
from playground.models import Agent, AgentKind, AgentSecret, Role
from webapp import egress, vault

MAX_AGENTS = 4
# Config keys that would put a secret in the clear in the database: keys go in the API key
# field (encrypted) or in an allowed environment variable.
_SECRET_KEYS = {"api_key", "apikey", "key", "token", "access_token", "api_token", "password",
                "secret", "authorization"}  # fmt: skip


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
        return json.dumps(value, indent=2) if isinstance(value, dict) else value

    def to_python(self, value: Any) -> dict[str, Any]:
        text = super().to_python(value)
        return parse_json_object(text or "{}", self.label or "The value")


class AgentForm(forms.ModelForm):
    config = JSONObjectField(
        required=False,
        label="Config",
        help_text="url, model, timeout; api_key_env (a variable on SPYGLASS_AGENT_ENV_ALLOW)",
    )
    default_params = JSONObjectField(required=False, label="Default parameters")
    # Write-only: never rendered back, not even after an error (render_value=False).
    api_key = forms.CharField(
        required=False,
        strip=True,
        label="API key",
        max_length=4096,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    remove_api_key = forms.BooleanField(required=False, label="Remove the stored API key")

    class Meta:
        model = Agent
        fields = ["name", "kind", "config", "default_params", "model_id"]
        labels = {"model_id": "Logged model version (m-...)"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        saved = None
        if self.instance.pk is not None:
            saved = (
                AgentSecret.objects.filter(agent=self.instance)
                .values_list("updated_at", flat=True)
                .first()
            )
        self.has_api_key = saved is not None
        key_field = self.fields["api_key"]
        if saved is not None:
            key_field.help_text = (
                f"Set (saved {saved:%Y-%m-%d %H:%M} UTC); it is never shown again. Type a new "
                "one to replace it."
            )
        else:
            key_field.help_text = "Sent as Authorization: Bearer. Stored encrypted, never shown."
            del self.fields["remove_api_key"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        config = data.get("config") or {}
        kind = data.get("kind")
        secrets = sorted(k for k in config if k.lower().replace("-", "_") in _SECRET_KEYS)
        if secrets:
            self.add_error("config", f"Do not put keys in the config ({', '.join(secrets)}): "
                           "use the API key field, which stores them encrypted.")  # fmt: skip
        http_kind = kind in (AgentKind.OPENAI, AgentKind.MLFLOW_SERVING)
        if http_kind and not config.get("url"):
            self.add_error("config", "This kind needs a url in its config.")
        elif http_kind:
            self._check_url(str(config["url"]))
        if config.get("api_key_env"):
            try:
                egress.check_env_name(str(config["api_key_env"]))
            except egress.EgressRefused as exc:
                self.add_error("config", f"api_key_env: {exc}")
        self._clean_api_key(data, config, http_kind)
        builtin = config.get("agent", "echo")
        if kind == AgentKind.BUILTIN and builtin not in ("echo", "oracle-judge"):
            self.add_error("config", 'A built-in agent is "echo" or "oracle-judge".')
        if kind == AgentKind.LOGGED_MODEL and not logged_model.enabled():
            # Refused here, not at the first message: the worker would only fail later.
            self.add_error("kind", "Logged-model agents are off: they run the model's logged "
                           "code in the worker. Set SPYGLASS_PLAYGROUND_LOGGED_MODELS=1 in the "
                           "environment of the web server and the workers, restart them, and "
                           "save again.")  # fmt: skip
        if kind == AgentKind.LOGGED_MODEL and not (config.get("model_uri") or data.get("model_id")):
            self.add_error("model_id", "A logged-model agent needs a model id or a model_uri.")
        if kind == AgentKind.LOGGED_MODEL and config.get("model_uri"):
            try:
                check_model_uri(str(config["model_uri"]))
            except AgentError as exc:
                self.add_error("config", str(exc))
        return data

    def _check_url(self, url: str) -> None:
        # No DNS here: the web server may not resolve what the workers do. The call checks
        # again, resolved, whatever is stored.
        try:
            egress.check_url(url, resolve=False)
        except egress.EgressRefused as exc:
            self.add_error("config", f"url: {exc}")
            return
        # The URL is shown on the agent's spans: a key in its query would be on every trace.
        query = parse_qs(urlsplit(url).query)
        if any(k.lower().replace("-", "_") in _SECRET_KEYS for k in query):
            self.add_error("config", "url: do not put keys in the URL's query: use the API "
                           "key field, which stores them encrypted.")  # fmt: skip

    def _clean_api_key(self, data: dict[str, Any], config: dict[str, Any], http_kind: bool) -> None:
        key = data.get("api_key")
        if not key:
            return
        if data.get("remove_api_key"):
            self.add_error("api_key", "Type a new key or remove the stored one, not both.")
        elif not http_kind:
            self.add_error("api_key", "Only the openai and mlflow-serving kinds send a key.")
        elif config.get("api_key_env"):
            self.add_error("api_key", "Store a key or name api_key_env in the config, not both.")
        else:
            try:
                vault.check()
            except vault.SealError as exc:
                self.add_error("api_key", str(exc))

    def save(self, commit: bool = True) -> Agent:
        if not commit:
            raise ValueError("AgentForm saves the agent and its key together: commit=True.")
        with transaction.atomic():
            agent = super().save()
            if self.cleaned_data.get("api_key"):
                agent.set_api_key(self.cleaned_data["api_key"])
            elif self.cleaned_data.get("remove_api_key"):
                agent.remove_api_key()
        return agent
