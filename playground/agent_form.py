"""The agent form: the fields of the chosen kind, each with a label, help and an example.

Every kind reads a few config keys (playground/agents/*.py); each of those has a field of its
own here, and whatever else is in the config stays in the "Advanced: extra JSON" box, so an
agent edited here loses nothing. The server still checks what it checked before the fields:
URLs through the outbound gate (no DNS here; the call checks again), no secret in the config,
`api_key_env` against the allow-list, and a kind that is off refused at save.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django import forms
from django.db import transaction
from django.http import QueryDict

from playground.agents import logged_model
from playground.agents.base import AgentError
from playground.agents.builtin import ECHO, ORACLE_JUDGE
from playground.agents.logged_model import check_model_uri
from playground.forms import JSONObjectField
from playground.models import Agent, AgentKind, AgentSecret
from webapp import egress, vault

# Config keys that would put a secret in the clear in the database: keys go in the API key
# field (encrypted) or in an allowed environment variable.
SECRET_KEYS = {"api_key", "apikey", "key", "token", "access_token", "api_token", "password",
               "secret", "authorization"}  # fmt: skip
HTTP_KINDS = (AgentKind.OPENAI, AgentKind.MLFLOW_SERVING)

# The form fields of each kind, in order. Those in CONFIG_KEYS are keys of Agent.config.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    AgentKind.OPENAI: ("url", "model", "api_key", "remove_api_key", "api_key_env", "stream",
                       "timeout", "model_id"),
    AgentKind.MLFLOW_SERVING: ("url", "api_key", "remove_api_key", "api_key_env", "stream",
                               "timeout", "model_id"),
    AgentKind.LOGGED_MODEL: ("model_uri", "model_id", "stream"),
    AgentKind.BUILTIN: ("agent", "word_delay_ms", "model_id"),
}  # fmt: skip
CONFIG_KEYS = ("url", "model", "api_key_env", "stream", "timeout", "model_uri", "agent",
               "word_delay_ms")  # fmt: skip
# What `stream` is when the config does not say (the clients' defaults).
STREAM_DEFAULT = {AgentKind.OPENAI: True, AgentKind.MLFLOW_SERVING: False,
                  AgentKind.LOGGED_MODEL: True}  # fmt: skip

# Per kind: (label, help, example) where a field reads differently for that kind.
_PER_KIND: dict[tuple[str, str], tuple[str, str, str]] = {
    (AgentKind.OPENAI, "url"): (
        "URL", "The chat-completions URL, or a base URL ending in /v1 (vLLM, Ollama, OpenAI, "
        "LiteLLM...).", "http://127.0.0.1:8000/v1"),
    (AgentKind.MLFLOW_SERVING, "url"): (
        "URL", "The /invocations URL of mlflow models serve, or of a serving endpoint. "
        "ChatModel, ChatAgent and ResponsesAgent answers are all read.",
        "http://127.0.0.1:5001/invocations"),
    (AgentKind.OPENAI, "stream"): (
        "Stream the answer", "Ask for server-sent events; a server that answers plain JSON "
        "is read as JSON.", ""),
    (AgentKind.MLFLOW_SERVING, "stream"): (
        "Stream the answer", 'Send "stream": true. Off for mlflow models serve, which does '
        "not stream; on for endpoints that do.", ""),
    (AgentKind.LOGGED_MODEL, "stream"): (
        "Stream the answer", "Use the model's predict_stream when it has one; otherwise "
        "predict answers whole.", ""),
    (AgentKind.LOGGED_MODEL, "model_id"): (
        "Logged model version", "The version to load (m-...) when no model URI is given. "
        "Its traces link to it.", "m-0123456789abcdef0123456789abcdef"),
}  # fmt: skip
_MODEL_ID = ("Logged model version (optional)", "The logged model version (m-...) this agent "
             "serves: its traces link to that version's page.",
             "m-0123456789abcdef0123456789abcdef")  # fmt: skip
# The extra JSON box: what a kind reads that has no field, as an example.
_EXTRA = {
    AgentKind.BUILTIN: ('Anything else the demo agent reads: "roles" (oracle-judge: '
                        'instructions, temperature, max_tokens per role), "latency_ms".',
                        '{"roles": {"judge": {"temperature": 0.2}}}'),
}  # fmt: skip
_EXTRA_DEFAULT = ("Config keys without a field above, if any; usually empty.", "{}")


def _text(label: str, help_text: str, example: str, **kwargs: Any) -> forms.CharField:
    attrs = {"placeholder": example, "spellcheck": "false", "autocomplete": "off"}
    return forms.CharField(required=False, label=label, help_text=help_text,
                           widget=forms.TextInput(attrs=attrs), **kwargs)  # fmt: skip


class AgentForm(forms.ModelForm):
    # --- per kind (KIND_FIELDS); those a kind does not have are removed in __init__ ---
    url = _text("URL", "", "", max_length=2000)
    model = _text("Model name", "The model field of the request: what the server serves.",
                  "meta-llama/Llama-3.1-8B-Instruct", max_length=300)  # fmt: skip
    # Write-only: never rendered back, not even after an error (render_value=False).
    api_key = forms.CharField(
        required=False, strip=True, label="API key", max_length=4096,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password",
                                                              "placeholder": "sk-..."}),
    )  # fmt: skip
    remove_api_key = forms.BooleanField(required=False, label="Remove the stored API key")
    api_key_env = _text(
        "Or: API key environment variable",
        "The name of a variable in the workers' environment holding the key, instead of a "
        "stored key. SPYGLASS_AGENT_ENV_ALLOW must list it.",
        "VLLM_API_KEY",
        max_length=200,
    )
    stream = forms.BooleanField(required=False, label="Stream the answer")
    timeout = forms.FloatField(
        required=False, min_value=0.1, max_value=3600, label="Timeout (seconds)",
        help_text="How long each read may wait for the agent. Default 60.",
        widget=forms.NumberInput(attrs={"placeholder": "60", "step": "any"}),
    )  # fmt: skip
    model_uri = _text(
        "Model URI", "models:/<name>/<version>, models:/<name>@<alias>, runs:/<run id>/<path> "
        "or a local path; empty: the logged model version below.",
        "models:/support_chat_agent@champion", max_length=1000)  # fmt: skip
    agent = forms.ChoiceField(
        required=False, label="Built-in agent", initial=ECHO,
        choices=[(ECHO, "echo: repeats your message, word by word"),
                 (ORACLE_JUDGE, "oracle-judge: an oracle drafts, a judge improves")],
        help_text="Demo agents that need no network.",
    )  # fmt: skip
    word_delay_ms = forms.IntegerField(
        required=False, min_value=0, max_value=5000, label="Pause between words (ms)",
        help_text="The pace of the stream. Default 15.",
        widget=forms.NumberInput(attrs={"placeholder": "15"}),
    )  # fmt: skip
    # --- every kind ---
    config = JSONObjectField(required=False, label="Extra config (JSON)")
    default_params = JSONObjectField(
        required=False, label="Default parameters",
        help_text="What a new conversation starts with: temperature, max_tokens, stop.",
    )  # fmt: skip

    class Meta:
        model = Agent
        fields = ["name", "kind", "model_id", "config", "default_params"]
        widgets = {"name": forms.TextInput(attrs={"placeholder": "support-agent (vLLM)",
                                                  "autocomplete": "off"})}  # fmt: skip

    def __init__(self, *args: Any, fields_url: str = "", **kwargs: Any) -> None:
        given = dict(kwargs.get("initial") or {})
        super().__init__(*args, **kwargs)
        self.chosen_kind = self._chosen_kind()
        self._label_kinds(fields_url)
        self._fill_from_config(given)
        self._shape_fields()
        self._api_key_help()

    # --- which kind, and its fields ---

    def _chosen_kind(self) -> str:
        if self.is_bound:
            kind = self.data.get("kind")
        else:
            kind = self.initial.get("kind") or self.instance.kind
        return kind if kind in KIND_FIELDS else AgentKind.OPENAI

    def _label_kinds(self, fields_url: str) -> None:
        field = self.fields["kind"]
        off = not logged_model.enabled()
        field.choices = [(value, f"{label} (off on this server)" if off and
                          value == AgentKind.LOGGED_MODEL else label)
                         for value, label in field.choices if value]  # fmt: skip
        field.help_text = "Picking another kind shows its fields."
        if fields_url:
            # htmx swaps in the chosen kind's fields; never sends a typed key along.
            field.widget.attrs.update({
                "hx-get": fields_url, "hx-trigger": "change", "hx-target": "#agent-kind-fields",
                "hx-swap": "outerHTML", "hx-include": "closest form",
                "hx-params": "not api_key,csrfmiddlewaretoken,remove_api_key",
            })  # fmt: skip

    def _fill_from_config(self, given: dict[str, Any]) -> None:
        """Initial values of the kind's fields from the stored config; the rest of the config
        in the extra JSON box. Values `given` as `initial` (a kind switch) win."""
        stored = dict(self.instance.config or {}) if self.instance.pk else {}
        keys = set(self.kind_config_keys())
        for key in keys:
            if key in stored and key not in given:
                self.initial[key] = stored[key]
        if "stream" in keys and "stream" not in given:
            same_kind = self.instance.pk and self.instance.kind == self.chosen_kind
            default = STREAM_DEFAULT.get(self.chosen_kind, False)
            self.initial["stream"] = stored.get("stream", default) if same_kind else default
            self.initial["stream"] = self.initial["stream"] is not False
        if "config" not in given:
            self.initial["config"] = {k: v for k, v in stored.items() if k not in keys}

    def kind_config_keys(self) -> tuple[str, ...]:
        return tuple(k for k in KIND_FIELDS[self.chosen_kind] if k in CONFIG_KEYS)

    def _shape_fields(self) -> None:
        mine = set(KIND_FIELDS[self.chosen_kind])
        for name in [n for n in self.fields if n in _ALL_KIND_FIELDS and n not in mine]:
            del self.fields[name]
        for name in mine & set(self.fields):
            label, help_text, example = _PER_KIND.get(
                (self.chosen_kind, name), _MODEL_ID if name == "model_id" else (None, None, None)
            )
            field = self.fields[name]
            field.label = label or field.label
            field.help_text = help_text or field.help_text
            if example:
                field.widget.attrs["placeholder"] = example
        help_text, example = _EXTRA.get(self.chosen_kind, _EXTRA_DEFAULT)
        self.fields["config"].help_text = help_text
        self.fields["config"].widget.attrs["placeholder"] = example
        self.fields["default_params"].widget.attrs["placeholder"] = (
            '{"temperature": 0.2, "max_tokens": 512}'
        )

    def _api_key_help(self) -> None:
        if "api_key" not in self.fields:
            return
        saved = None
        if self.instance.pk is not None:
            saved = (
                AgentSecret.objects.filter(agent=self.instance)
                .values_list("updated_at", flat=True)
                .first()
            )
        self.has_api_key = saved is not None
        if saved is not None:
            self.fields["api_key"].help_text = (
                f"Set (saved {saved:%Y-%m-%d %H:%M} UTC); it is never shown again. Type a new "
                "one to replace it."
            )
        else:
            self.fields[
                "api_key"
            ].help_text = "Sent as Authorization: Bearer. Stored encrypted, never shown again."
            del self.fields["remove_api_key"]

    def kind_fields(self) -> list[forms.BoundField]:
        """The chosen kind's fields, in order (the template's swappable part)."""
        return [self[name] for name in KIND_FIELDS[self.chosen_kind] if name in self.fields]

    def kind_is_off(self) -> bool:
        """The chosen kind is switched off on this server (saving it is refused)."""
        return self.chosen_kind == AgentKind.LOGGED_MODEL and not logged_model.enabled()

    def extra_open(self) -> bool:
        """Whether the extra JSON box starts open: it holds something, or an error."""
        value = self["config"].value()
        return bool(self["config"].errors) or value not in (None, "", {}, "{}")

    # --- validation ---

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        config = self._config(data)
        data["config"] = config
        if kind in HTTP_KINDS:
            self._check_url(config.get("url"))
        if config.get("api_key_env"):
            try:
                egress.check_env_name(str(config["api_key_env"]))
            except egress.EgressRefused as exc:
                self._error("api_key_env", str(exc))
        self._clean_api_key(data, config)
        if kind == AgentKind.LOGGED_MODEL:
            self._check_logged_model(data, config)
        return data

    def _config(self, data: dict[str, Any]) -> dict[str, Any]:
        """The config to store: the extra JSON, with the kind's fields over it. A key typed
        in both places is refused; one only in the JSON (a script posting the JSON) is used."""
        extra = dict(data.get("config") or {})
        secrets = sorted(k for k in extra if k.lower().replace("-", "_") in SECRET_KEYS)
        if secrets:
            self.add_error("config", f"Do not put keys in the config ({', '.join(secrets)}): "
                           "use the API key field, which stores them encrypted.")  # fmt: skip
        config = dict(extra)
        for key in self.kind_config_keys():
            value = data.get(key)
            if key == "stream":
                if "stream" in extra:
                    self.add_error("config", '"stream" has its own box above: set it there.')
                config["stream"] = bool(value)
            elif value not in (None, ""):
                if key in extra and extra[key] != value:
                    self.add_error("config", f'"{key}" has its own field above: set it there.')
                config[key] = _number(value) if key == "timeout" else value
            if key in self.fields and key != "stream" and config.get(key) in (None, ""):
                config.pop(key, None)
        return config

    def _error(self, key: str, message: str) -> None:
        # A key with a field shows its error there; one from the extra JSON, on the box.
        self.add_error(key if key in self.fields else "config", message)

    def _check_url(self, url: Any) -> None:
        if not url:
            if "url" in self.fields and not self.errors.get("url"):
                self.add_error("url", "This kind needs a url: where the agent answers.")
            return
        # No DNS here: the web server may not resolve what the workers do. The call checks
        # again, resolved, whatever is stored.
        try:
            egress.check_url(str(url), resolve=False)
        except egress.EgressRefused as exc:
            self._error("url", str(exc))
            return
        # The URL is shown on the agent's spans: a key in its query would be on every trace.
        query = parse_qs(urlsplit(str(url)).query)
        if any(k.lower().replace("-", "_") in SECRET_KEYS for k in query):
            self._error("url", "Do not put keys in the URL's query: use the API key field, "
                        "which stores them encrypted.")  # fmt: skip

    def _check_logged_model(self, data: dict[str, Any], config: dict[str, Any]) -> None:
        if not logged_model.enabled():
            # Refused here, not at the first message: the worker would only fail later.
            self.add_error("kind", "Logged-model agents are off: they run the model's logged "
                           "code in the worker. Set SPYGLASS_PLAYGROUND_LOGGED_MODELS=1 in the "
                           "environment of the web server and the workers, restart them, and "
                           "save again.")  # fmt: skip
        if not (config.get("model_uri") or data.get("model_id")):
            self.add_error("model_uri", "A logged-model agent needs a model URI or a logged "
                           "model version.")  # fmt: skip
        elif config.get("model_uri"):
            try:
                check_model_uri(str(config["model_uri"]))
            except AgentError as exc:
                self._error("model_uri", str(exc))

    def _clean_api_key(self, data: dict[str, Any], config: dict[str, Any]) -> None:
        key = data.get("api_key")
        if not key:
            return
        if data.get("remove_api_key"):
            self.add_error("api_key", "Type a new key or remove the stored one, not both.")
        elif config.get("api_key_env"):
            self.add_error("api_key", "Store a key or name an API key variable, not both.")
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


_ALL_KIND_FIELDS = {name for names in KIND_FIELDS.values() for name in names}


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def switch_initial(query: QueryDict) -> dict[str, Any]:
    """What a kind switch (htmx, or the no-JS "Show its fields" button) keeps of the form as
    typed: text the new kind's fields share, the name, the extra JSON as it is. Never a key;
    `stream` takes the new kind's default."""
    keep = ("name", "kind", "model_id", "config", "default_params",
            *(key for key in CONFIG_KEYS if key != "stream"))  # fmt: skip
    return {k: query[k] for k in keep if query.get(k)}
