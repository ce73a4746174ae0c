"""Playground tables: agents (how to reach them), conversations, messages, and runs.

A Run is one agent's answer to one user message. The assistant's text lives on the run, not
in a Message, so that several agents can answer the same message side by side (compare mode)
and each keeps its own history.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from playground import cancel_signal
from webapp import vault

if TYPE_CHECKING:
    from access.rules import Access


class AgentKind(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible /v1/chat/completions"
    MLFLOW_SERVING = "mlflow-serving", "MLflow serving /invocations"
    LOGGED_MODEL = "logged-model", "Logged model (in the worker)"
    BUILTIN = "builtin", "Built-in demo agent"


class AgentQuerySet(models.QuerySet["Agent"]):
    def for_list(self) -> AgentQuerySet:
        """Agents with `has_api_key`, without loading any key."""
        return self.annotate(has_api_key=Exists(AgentSecret.objects.filter(agent=OuterRef("pk"))))


class Agent(models.Model):
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=AgentKind.choices)
    # How to reach it, per kind (url, model, api_key_env, ...); never a secret itself: a key
    # is an AgentSecret (encrypted), or an allowed environment variable named by api_key_env.
    config = models.JSONField(default=dict, blank=True)
    # temperature, max_tokens, stop: what a new conversation starts with.
    default_params = models.JSONField(default=dict, blank=True)
    # The logged model version this agent is (`m-<hex>`); its traces link to that version.
    # A plain id like Trace.model_id: the version may be logged after the agent is made.
    model_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def sealed_api_key(self) -> str:
        """The stored key, still encrypted ("" when none): `webapp.egress.secret_for` opens it
        at call time, and nothing else should."""
        if self.pk is None:
            return ""
        secret = AgentSecret.objects.filter(agent=self).values_list("sealed", flat=True).first()
        return secret or ""

    def set_api_key(self, key: str) -> None:
        """Store (or replace) the agent's key, encrypted; `vault.SealError` without a key."""
        AgentSecret.objects.update_or_create(
            agent=self, defaults={"sealed": vault.seal(key), "updated_at": timezone.now()}
        )

    def remove_api_key(self) -> None:
        AgentSecret.objects.filter(agent=self).delete()


class AgentSecret(models.Model):
    """An agent's API key, encrypted at rest (`webapp.vault`). A table of its own so that no
    query, form, admin page or serializer of agents ever carries it by accident; it is only
    written (replaced, removed) from the agent's form and read by `egress.secret_for`."""

    agent = models.OneToOneField(
        Agent, on_delete=models.CASCADE, primary_key=True, related_name="secret"
    )
    # A Fernet token: the key encrypted under SPYGLASS_SECRETS_KEY, never the key itself.
    sealed = models.TextField()
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"API key of agent {self.agent_id}"  # never the key


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def visible_to(self, access: Access) -> ConversationQuerySet:
        """A caller's own conversations; admins (everyone, with auth off) see them all."""
        if access.is_admin:
            return self
        if access.user is None or not access.user.is_authenticated:
            return self.none()
        return self.filter(owner=access.user)


class Conversation(models.Model):
    title = models.CharField(max_length=200, blank=True)
    # Who started it: only they (and admins) see it. Null when started with auth off.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
        related_name="conversations",
    )  # fmt: skip
    # 1 agent for a chat, 2-4 for compare mode.
    agents = models.ManyToManyField(Agent, related_name="conversations")
    system_prompt = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-pk"]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"

    def changeable_by(self, access: Access) -> bool:
        """Only who started it renames or deletes it (admins read others' chats, no more);
        with logins off, the one local user owns the chats started without a login."""
        user = access.user
        if user is not None and user.is_authenticated:
            return self.owner_id == user.pk
        return self.owner_id is None and access.is_admin

    def rename(self, title: str) -> None:
        self.title = title
        self.save(update_fields=["title"])


class Role(models.TextChoices):
    USER = "user"
    # Only for turns replayed from a trace: answers given in the playground are Runs.
    ASSISTANT = "assistant"


class Message(models.Model):
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.USER)
    content = models.TextField()
    # What the user sent with this turn: temperature, max_tokens, stop; and custom_inputs
    # (null when the gear is off, which differs from an empty object).
    params = models.JSONField(default=dict, blank=True)
    custom_inputs = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:50]}"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


UNFINISHED = (RunStatus.QUEUED, RunStatus.RUNNING)


class RunQuerySet(models.QuerySet["Run"]):
    def visible_to(self, access: Access) -> RunQuerySet:
        """The runs of the conversations `access` may see (Conversation.visible_to)."""
        if access.is_admin:
            return self
        if access.user is None or not access.user.is_authenticated:
            return self.none()
        return self.filter(conversation__owner=access.user)

    def unfinished(self) -> RunQuerySet:
        return self.filter(status__in=UNFINISHED)

    def claim(self, pk: int) -> bool:
        """queued -> running, for one worker only: a redelivered message finds it taken."""
        now = timezone.now()
        claimed = self.filter(pk=pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, seq=F("seq") + 1
        )
        return claimed == 1

    def stale(self, running_for: timedelta, queued_for: timedelta) -> RunQuerySet:
        now = timezone.now()
        return self.filter(
            Q(status=RunStatus.RUNNING, heartbeat_at__lt=now - running_for)
            | Q(status=RunStatus.QUEUED, created_at__lt=now - queued_for)
        )


class Run(models.Model):
    """One agent answering one user message, in a Celery task. The page reads this row."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="runs")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="runs")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    # The chat request as sent (messages, params, custom_inputs): what the trace and a
    # replay show, whatever the conversation becomes later.
    request = models.JSONField(default=dict, blank=True)
    content = models.TextField(blank=True)
    custom_outputs = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    prompt_tokens = models.IntegerField(null=True, blank=True)
    completion_tokens = models.IntegerField(null=True, blank=True)
    total_tokens = models.IntegerField(null=True, blank=True)
    # The agent's own time (first byte sent to last byte read), in milliseconds.
    latency_ms = models.IntegerField(null=True, blank=True)
    trace_id = models.CharField(max_length=64, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Moved forward by every write of the running task; the reaper fails runs whose worker
    # stopped writing long ago.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every change: a polling client that has seen this value gets 204.
    seq = models.IntegerField(default=0)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="run_status_idx")]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED

    def cancel(self) -> bool:
        """Cancel if still unfinished; the task's watcher sees the signal and stops the call."""
        now = timezone.now()
        updated = Run.objects.filter(pk=self.pk, status__in=UNFINISHED).update(
            status=RunStatus.CANCELLED,
            error="Cancelled.",
            finished_at=now,
            heartbeat_at=now,
            seq=F("seq") + 1,
        )
        if updated:
            cancel_signal.send(self.pk, self.task_id)
        return updated == 1

    def fail(self, error: str) -> bool:
        """Mark failed unless it already finished (a late failure never hides an answer)."""
        now = timezone.now()
        updated = Run.objects.filter(pk=self.pk, status__in=UNFINISHED).update(
            status=RunStatus.FAILED, error=error, finished_at=now, heartbeat_at=now,
            seq=F("seq") + 1,
        )  # fmt: skip
        return updated == 1


class ReplayQuerySet(models.QuerySet["Replay"]):
    def claim(self, pk: int) -> bool:
        """queued -> running, for one worker only: a redelivered message finds it taken."""
        now = timezone.now()
        claimed = self.filter(pk=pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now, heartbeat_at=now
        )
        return claimed == 1

    def stale(self, running_for: timedelta, queued_for: timedelta) -> ReplayQuerySet:
        """Replays no worker will finish. A running replay beats at every turn, and while a
        turn is answered its run beats: so it is lost when it has not beaten for long and no
        run of its conversation is still unfinished (the run reaper fails a lost answer)."""
        now = timezone.now()
        answering = Run.objects.filter(conversation=OuterRef("conversation"), status__in=UNFINISHED)
        return self.filter(
            Q(status=RunStatus.RUNNING, heartbeat_at__lt=now - running_for) & Q(~Exists(answering))
            | Q(status=RunStatus.QUEUED, created_at__lt=now - queued_for)
        )


class Replay(models.Model):
    """A logged session's user turns answered again, in order, by the conversation's agents:
    one Celery task answers turn after turn (session_replay.run). The page reads this row."""

    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, related_name="replay"
    )
    # Where the turns came from (a plain id pair: the session may be deleted later).
    session_id = models.CharField(max_length=250)
    experiment_id = models.IntegerField()
    # The user turns as recorded: [{"content", "custom_inputs", "params"}], oldest first.
    turns = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    # How many turns were started (sent to the agents) so far.
    turns_started = models.IntegerField(default=0)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = ReplayQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Replay {self.pk} of session {self.session_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED

    def start_turn(self, index: int) -> bool:
        """Note that turn `index` starts; False when the replay is no longer running
        (cancelled, or reaped), and the turn must not start."""
        updated = Replay.objects.filter(pk=self.pk, status=RunStatus.RUNNING).update(
            turns_started=index + 1, heartbeat_at=timezone.now()
        )
        return updated == 1

    def beat(self) -> bool:
        """Mark the replay alive between answers; False when it is no longer running."""
        updated = Replay.objects.filter(pk=self.pk, status=RunStatus.RUNNING).update(
            heartbeat_at=timezone.now()
        )
        return updated == 1

    def finish(self) -> bool:
        return self._end(RunStatus.DONE)

    def fail(self, error: str) -> bool:
        return self._end(RunStatus.FAILED, error=error)

    def cancel(self) -> bool:
        """Stop the replay: no further turn starts, and the answers under way are cancelled
        (their tasks' watchers stop the agent calls)."""
        ended = self._end(RunStatus.CANCELLED, error="Cancelled.")
        for run in Run.objects.filter(conversation_id=self.conversation_id).unfinished():
            run.cancel()
        return ended

    def _end(self, status: str, **fields: object) -> bool:
        now = timezone.now()
        updated = Replay.objects.filter(pk=self.pk, status__in=UNFINISHED).update(
            status=status, finished_at=now, heartbeat_at=now, **fields
        )
        return updated == 1


class CheckStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


class AgentCheckQuerySet(models.QuerySet["AgentCheck"]):
    def claim(self, pk: int) -> bool:
        """queued -> running, for one worker only: a redelivered message finds it taken."""
        claimed = self.filter(pk=pk, status=CheckStatus.QUEUED).update(
            status=CheckStatus.RUNNING, started_at=timezone.now()
        )
        return claimed == 1

    def latest_by_agent(self, agent_ids: list[int]) -> dict[int, AgentCheck]:
        """The newest check of each of these agents (one query)."""
        newest: dict[int, AgentCheck] = {}
        checks = self.filter(agent_id__in=agent_ids).order_by("agent_id", "-created_at", "-pk")
        for check in checks:
            newest.setdefault(check.agent_id, check)
        return newest


class AgentCheck(models.Model):
    """One "Test connection" of an agent: a tiny message sent through the worker, and what
    came back. The agents' list shows each agent's newest; older ones are deleted when a new
    one starts."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="checks")
    status = models.CharField(max_length=16, choices=CheckStatus.choices,
                              default=CheckStatus.QUEUED)  # fmt: skip
    # The agent's own time (the call, not the queue), in milliseconds.
    latency_ms = models.IntegerField(null=True, blank=True)
    # The first words of the answer, or why there was none (the agent client's message).
    answer = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = AgentCheckQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Check {self.pk} of agent {self.agent_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (CheckStatus.OK, CheckStatus.FAILED)

    def finish(self, answer: str, latency_ms: int) -> bool:
        return self._end(CheckStatus.OK, answer=answer, latency_ms=latency_ms)

    def fail(self, error: str, latency_ms: int | None = None) -> bool:
        """Mark failed unless it already finished (a late failure never hides a result)."""
        return self._end(CheckStatus.FAILED, error=error, latency_ms=latency_ms)

    def _end(self, status: str, **fields: object) -> bool:
        updated = AgentCheck.objects.filter(
            pk=self.pk, status__in=(CheckStatus.QUEUED, CheckStatus.RUNNING)
        ).update(status=status, finished_at=timezone.now(), **fields)
        if updated:
            # Deleted meanwhile (its agent, or a newer check): nothing left to show.
            with contextlib.suppress(AgentCheck.DoesNotExist):
                self.refresh_from_db()
        return updated == 1
