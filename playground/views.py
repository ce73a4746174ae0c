"""Playground pages: start a chat (1 agent, or 2-4 side by side), chat on, watch answers
stream in (each run's fragment polls itself while unfinished), cancel, open each answer's
trace; and the agents' list and settings."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from access.rules import access_for
from playground import checks, replay, runs, session_replay, tracing
from playground.agent_form import HTTP_KINDS, AgentForm, switch_initial
from playground.agents.builtin import ensure_demo_agents
from playground.forms import ConversationTitleForm, NewChatForm, ReplayForm, SendForm
from playground.models import Agent, AgentCheck, AgentKind, Conversation, Replay, Run
from tracking import sessions, waterfall
from tracking.models import Span, Trace, TraceSession
from webapp.htmx import HtmxHttpRequest, go_to, render_page

CONVERSATIONS_SHOWN = 50
# The inline waterfall of an answer is a summary; the trace page shows everything.
INLINE_SPANS_MAX = 100


def _conversations(request: HttpRequest) -> list[Conversation]:
    own = _own_conversations(request)
    return list(own.select_related("owner").prefetch_related("agents")[:CONVERSATIONS_SHOWN])


def _own_conversations(request: HttpRequest) -> QuerySet[Conversation]:
    """Conversations belong to who started them; anyone else gets 404 (admins see all)."""
    return Conversation.objects.visible_to(access_for(request))


def _own_runs(request: HttpRequest) -> QuerySet[Run]:
    return Run.objects.visible_to(access_for(request))


@require_safe
def index(request: HtmxHttpRequest) -> HttpResponse:
    ensure_demo_agents()
    prefill = None
    if trace_id := request.GET.get("replay"):
        prefill = replay.from_trace(trace_id, access_for(request))
    elif session_id := request.GET.get("replay_session"):
        experiment_id = request.GET.get("experiment", "")
        prefill = replay.from_session(session_id, experiment_id, access_for(request))
    elif model_id := request.GET.get("model"):
        prefill = replay.from_model(model_id, access_for(request))
    form = NewChatForm(initial=_prefilled(prefill))
    return _index(request, form, prefill)


def _prefilled(prefill: replay.Prefill | None) -> dict[str, Any]:
    if prefill is None:
        first = Agent.objects.values_list("pk", flat=True).first()
        return {"agents": [first] if first else []}
    return {
        "agents": prefill.agent_ids,
        "message": prefill.message,
        "system_prompt": prefill.system_prompt,
        "history": _json_text(prefill.history),
        "custom_inputs_enabled": prefill.custom_inputs is not None,
        "custom_inputs": _json_text(prefill.custom_inputs, indent=2),
        "temperature": prefill.params.get("temperature"),
        "max_tokens": prefill.params.get("max_tokens"),
        "stop": "\n".join(s for s in prefill.params.get("stop") or [] if isinstance(s, str)),
    }


def _json_text(value: Any, indent: int | None = None) -> str:
    return "" if value in (None, []) else json.dumps(value, indent=indent, ensure_ascii=False)


def _index(request: HtmxHttpRequest, form: NewChatForm, prefill: replay.Prefill | None,
           status: int = 200) -> HttpResponse:  # fmt: skip
    context = {
        "form": form,
        "prefill": prefill,
        "history": _turns(form["history"].value()),
        "conversations": _conversations(request),
    }
    return render_page(
        request, "playground/index.html", context, fragment="new-chat", status=status
    )


def _turns(text: str | None) -> list[dict[str, str]]:
    """The replayed turns the form carries, to show them above the message."""
    try:
        turns = json.loads(text or "[]")
    except ValueError:
        return []
    return [t for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []


@require_POST
def new_chat(request: HtmxHttpRequest) -> HttpResponse:
    form = NewChatForm(request.POST)
    if not form.is_valid():
        return _index(request, form, None, status=422)
    data = form.cleaned_data
    owner = request.user if request.user.is_authenticated else None
    conversation = Conversation.objects.create(
        title=data["message"][:200], system_prompt=data["system_prompt"], owner=owner
    )
    conversation.agents.set(data["agents"])
    runs.send(conversation, data["message"], form.params(), data["custom_inputs"],
              history=data["history"])  # fmt: skip
    url = reverse("playground:conversation", args=[conversation.pk])
    return go_to(request, url)


@require_safe
def conversation(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The chat; while a replay adds turns, the page polls it with the `state` it has, and
    gets 204 until a turn arrives or the replay ends."""
    chat = get_object_or_404(_own_conversations(request), pk=pk)
    if "state" in request.GET and request.GET["state"] == _replay_state(chat):
        return HttpResponse(status=204)
    return _chat(request, chat, SendForm(initial=_carried_over(chat)))


def _replay_state(chat: Conversation) -> str:
    replay = Replay.objects.filter(conversation=chat).values_list("status", flat=True).first()
    return f"{chat.messages.count()}-{replay or ''}"


def _readable_session(request: HttpRequest) -> TraceSession:
    """The session named by ?session=&experiment=, if the caller may read its experiment."""
    session_id, experiment = request.GET.get("session", ""), request.GET.get("experiment", "")
    found = [
        s
        for s in sessions.experiments_of(access_for(request), session_id)
        if str(s.experiment_id) == experiment
    ]
    if not session_id or not found:
        raise Http404("No such session.")
    return found[0]


@require_http_methods(["GET", "HEAD", "POST"])
def replay_session(request: HtmxHttpRequest) -> HttpResponse:
    """Choose the agents that answer a logged session's user turns again, and start: the new
    conversation fills turn by turn. READ on the session's experiment, else 404."""
    session = _readable_session(request)
    status = 200
    if request.method == "POST":
        form = ReplayForm(request.POST)
        if form.is_valid():
            owner = request.user if request.user.is_authenticated else None
            started = session_replay.start(session, form.cleaned_data["agents"], owner)
            url = reverse("playground:conversation", args=[started.conversation_id])
            return go_to(request, url)
        status = 422
    else:
        ensure_demo_agents()
        # The agents of the versions that answered it, as "Open in playground" picks.
        model_ids = (
            Trace.objects.filter(experiment_id=session.experiment_id, session_id=session.session_id)
            .exclude(model_id="")
            .values("model_id")
        )
        form = ReplayForm(initial={"agents": list(Agent.objects.filter(model_id__in=model_ids))})
    context = {"form": form, "session": session, "query": request.GET.urlencode()}
    return render_page(request, "playground/replay.html", context, fragment="replay-form",
                       status=status)  # fmt: skip


@require_POST
def cancel_replay(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Stop a replay: no further turn starts, the answers under way are cancelled."""
    found = Replay.objects.filter(conversation__in=_own_conversations(request))
    stopping = get_object_or_404(found, pk=pk)
    stopping.cancel()
    url = reverse("playground:conversation", args=[stopping.conversation_id])
    return go_to(request, url)


def _carried_over(chat: Conversation) -> dict[str, Any]:
    """The next message starts with the parameters and custom_inputs of the last one."""
    last = chat.messages.filter(role="user").order_by("-created_at", "-pk").first()
    if last is None:
        return {}
    params = last.params or {}
    return {
        "temperature": params.get("temperature"),
        "max_tokens": params.get("max_tokens"),
        "stop": "\n".join(params.get("stop") or []),
        "custom_inputs_enabled": last.custom_inputs is not None,
        "custom_inputs": _json_text(last.custom_inputs, indent=2),
    }


def _chat(request: HtmxHttpRequest, chat: Conversation, form: SendForm, status: int = 200,
          title_form: ConversationTitleForm | None = None) -> HttpResponse:  # fmt: skip
    agents = list(chat.agents.all())
    messages = list(chat.messages.all())
    by_turn = {(r.message_id, r.agent_id): r for r in chat.runs.select_related("agent")}
    compare = _compare_links(agents, messages, by_turn)
    panes = [
        {
            "agent": agent,
            "turns": [
                (m, by_turn.get((m.pk, agent.pk)), compare.get(m.pk, []) if i == 0 else [])
                for m in messages
            ],
        }
        for i, agent in enumerate(agents)
    ]
    context = {
        "chat": chat,
        "panes": panes,
        "form": form,
        "conversations": _conversations(request),
        "may_change": chat.changeable_by(access_for(request)),
        "title_form": title_form or ConversationTitleForm(initial={"title": chat.title}),
        "replay": Replay.objects.filter(conversation=chat).first(),
        "replay_state": _replay_state(chat),
    }
    return render_page(
        request, "playground/conversation.html", context, fragment="chat", status=status
    )


def _compare_links(
    agents: list[Agent], messages: list, by_turn: dict[tuple[int, int], Run]
) -> dict[int, list[tuple[str, str, str]]]:
    """Per user message answered by several agents: pairwise review and trace diff links, the
    first agent's answer against each other one's (shown under the first pane). A run names
    its trace from its task id before it ends, so the link is there while the answers stream
    in."""
    links: dict[int, list[tuple[str, str, str]]] = {}
    url = reverse("evaluation:pairwise")
    diff_url = reverse("tracking:trace-diff")
    for message in messages:
        traced = []
        for agent in agents:
            run = by_turn.get((message.pk, agent.pk))
            trace_id = run and (run.trace_id or tracing.trace_id_for_task(run.task_id))
            if trace_id:
                traced.append((agent, trace_id))
        if len(traced) < 2:
            continue
        (_, first), others = traced[0], traced[1:]
        links[message.pk] = [
            (
                "Compare these answers" if len(others) == 1 else f"Compare with {agent.name}",
                f"{url}?{urlencode({'a': first, 'b': trace_id})}",
                f"{diff_url}?{urlencode({'a': first, 'b': trace_id})}",
            )
            for agent, trace_id in others
        ]
    return links


@require_POST
def send(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    chat = get_object_or_404(_own_conversations(request), pk=pk)
    form = SendForm(request.POST)
    if not form.is_valid():
        return _chat(request, chat, form, status=422)
    data = form.cleaned_data
    runs.send(chat, data["message"], form.params(), data["custom_inputs"], history=data["history"])
    if not request.htmx:
        return redirect("playground:conversation", pk=chat.pk)
    return _chat(request, chat, SendForm(initial=form.carried_over()))


def _changeable_conversation(request: HtmxHttpRequest, pk: int) -> Conversation:
    chat = get_object_or_404(_own_conversations(request), pk=pk)
    if not chat.changeable_by(access_for(request)):
        raise PermissionDenied("Only who started a conversation can rename or delete it.")
    return chat


@require_POST
def rename_conversation(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    chat = _changeable_conversation(request, pk)
    form = ConversationTitleForm(request.POST)
    if not form.is_valid():
        return _chat(request, chat, SendForm(initial=_carried_over(chat)), status=400,
                     title_form=form)  # fmt: skip
    chat.rename(form.cleaned_data["title"])
    url = reverse("playground:conversation", args=[chat.pk])
    return go_to(request, url)


@require_POST
def delete_conversation(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    _changeable_conversation(request, pk).delete()
    url = reverse("playground:index")
    return go_to(request, url)


@require_safe
def run(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """One answer's fragment. A poller sends the `seq` it has; 204 when nothing changed."""
    seq = _own_runs(request).filter(pk=pk).values_list("seq", flat=True).first()
    if seq is None:
        raise Http404
    if request.GET.get("seq") == str(seq):
        return HttpResponse(status=204)
    answer = Run.objects.select_related("agent").get(pk=pk)
    return render(request, "playground/conversation.html#run", {"run": answer})


@require_POST
def cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    answer = get_object_or_404(_own_runs(request), pk=pk)
    answer.cancel()
    if not request.htmx:
        return redirect("playground:conversation", pk=answer.conversation_id)
    answer = Run.objects.select_related("agent").get(pk=pk)
    return render(request, "playground/conversation.html#run", {"run": answer})


@require_safe
def run_trace(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A small waterfall of one answer's trace, for its pane."""
    answer = get_object_or_404(_own_runs(request).only("trace_id"), pk=pk)
    rows = Span.objects.filter(trace__trace_id=answer.trace_id).values_list(
        "span_id", "parent_span_id", "name", "span_type", "start_ns", "end_ns", "status"
    )[: INLINE_SPANS_MAX + 1]
    rows = list(rows)
    layout = waterfall.build(rows[:INLINE_SPANS_MAX])
    total = max(layout.total_ns, 1)
    bars = [
        {
            "name": layout.names[i],
            "type": layout.types[i],
            "status": layout.statuses[i],
            "depth": min(layout.depth[i], 16),
            "duration_ns": layout.duration[i],
            "left": round(100 * layout.start[i] / total, 2),
            "width": max(0.5, round(100 * (layout.duration[i] or 0) / total, 2)),
        }
        for i in range(len(layout))
    ]
    context = {"run": answer, "bars": bars, "more": len(rows) > INLINE_SPANS_MAX}
    return render(request, "playground/conversation.html#run-trace", context)


def _agents_page(request: HtmxHttpRequest, form: AgentForm | None, editing: Agent | None,
                 status: int | None = None) -> HttpResponse:  # fmt: skip
    if form is not None and request.htmx and request.method == "GET" and "kind" in request.GET:
        # htmx swapping in the fields of the kind just picked.
        return render_page(request, "playground/agents.html", {"form": form},
                           fragment="kind-fields")  # fmt: skip
    agents = list(Agent.objects.for_list())
    newest = AgentCheck.objects.latest_by_agent([a.pk for a in agents])
    for item in agents:
        item.where = _where(item)
        item.check = checks.expire(newest[item.pk]) if item.pk in newest else None
    context = {"form": form, "may_manage": form is not None, "editing": editing,
               "agents": agents, "editing_check": None}  # fmt: skip
    if editing is not None:
        context["editing_check"] = next((a.check for a in agents if a.pk == editing.pk), None)
    if status is None:
        status = 422 if form is not None and form.errors else 200
    return render_page(request, "playground/agents.html", context, status=status)


def _agent_form(request: HtmxHttpRequest, editing: Agent | None) -> tuple[AgentForm, bool]:
    """The form, and whether it is to be saved. A GET with ?kind= (htmx, on a change of kind)
    and a POST by the no-JS "Show its fields" button show the form for another kind,
    keeping what was typed (never a key), and save nothing."""
    url = request.path
    if request.method == "POST" and "show_fields" not in request.POST:
        return AgentForm(request.POST, instance=editing, fields_url=url), True
    query = request.POST if request.method == "POST" else request.GET
    initial = switch_initial(query)
    return AgentForm(instance=editing, initial=initial, fields_url=url), False


@require_http_methods(["GET", "HEAD", "POST"])
def agents(request: HtmxHttpRequest) -> HttpResponse:
    """The agents; admins also get the form that adds one (others: 403 on POST)."""
    if not access_for(request).can_manage_agents:
        if request.method == "POST":
            raise PermissionDenied("Only admins can add agents.")
        return _agents_page(request, None, None)
    form, submitted = _agent_form(request, None)
    if submitted and form.is_valid():
        form.save()
        return redirect("playground:agents")
    return _agents_page(request, form, None)


@require_http_methods(["GET", "HEAD", "POST"])
def agent(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    editing = get_object_or_404(Agent, pk=pk)
    if not access_for(request).can_manage_agents:
        if request.method == "POST":
            raise PermissionDenied("Only admins can change agents.")
        return _agents_page(request, None, editing)
    form, submitted = _agent_form(request, editing)
    if submitted and form.is_valid():
        form.save()
        return redirect("playground:agents")
    return _agents_page(request, form, editing)


@require_POST
def check_agent(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Test connection: one tiny message to the saved agent, through the worker."""
    if not access_for(request).can_manage_agents:
        raise PermissionDenied("Only admins can test agents.")
    agent = get_object_or_404(Agent, pk=pk)
    check = checks.start(agent)
    if not request.htmx:
        return redirect(_back_to(request, agent))
    check.refresh_from_db()  # a broker that refused it failed it already
    return render(request, "playground/agents.html#check", {"agent": agent, "check": check})


def _back_to(request: HttpRequest, agent: Agent) -> str:
    if request.POST.get("from") == "edit":
        return reverse("playground:agent", args=[agent.pk])
    return reverse("playground:agents")


@require_safe
def agent_check(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The newest check's fragment. A poller sends the status it has: 204 while unchanged."""
    agent = Agent.objects.filter(pk=pk).first()
    if agent is None:  # deleted while its check ran: 286 tells htmx to stop polling
        return HttpResponse(status=286)
    check = AgentCheck.objects.filter(agent=agent).first()
    if check is not None:
        check = checks.expire(check)
    if check is not None and request.GET.get("status") == check.status:
        return HttpResponse(status=204)
    return render(request, "playground/agents.html#check", {"agent": agent, "check": check})


def _where(agent: Agent) -> str:
    """Where the agent is reached, for the list: its URL (never a user:password in it), the
    model it loads, or the demo agent it is."""
    config = agent.config or {}
    if agent.kind in HTTP_KINDS:
        parts = urlsplit(str(config.get("url", "")))
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if agent.kind == AgentKind.LOGGED_MODEL:
        return str(config.get("model_uri") or f"models:/{agent.model_id}")
    return f"built-in: {config.get('agent', 'echo')}"


@require_POST
def delete_agent(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Delete an agent, its stored key and its answers (conversations keep their messages)."""
    if not access_for(request).can_manage_agents:
        raise PermissionDenied("Only admins can delete agents.")
    get_object_or_404(Agent, pk=pk).delete()
    return redirect("playground:agents")
