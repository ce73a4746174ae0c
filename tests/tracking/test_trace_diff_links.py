"""Where the trace diff is reached from: the trace page's "Compare with…", the trace list's
"Diff" (two selected), a playground turn answered by two agents, an evaluation comparison row
and a model comparison's answer pairs. Each link is followed and opens the diff of its pair."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import quote

import pytest
from django.test import Client
from django.utils import timezone

from playground.models import Agent, Conversation, Message, Run, RunStatus
from tracking.models import Experiment, LoggedModel, Span, Trace
from tracking.models import Run as TrackingRun

pytestmark = pytest.mark.django_db


def _trace(experiment: Experiment, model_id: str = "", **kw) -> Trace:
    trace = Trace.objects.create(
        trace_id=kw.pop("trace_id", "tr-" + uuid.uuid4().hex),
        experiment=experiment,
        request_time=kw.pop("request_time", timezone.now()),
        state="OK",
        request_preview=kw.pop("question", "Hours?"),
        response_preview=kw.pop("answer", "9 to 5."),
        model_id=model_id,
        span_count=1,
        **kw,
    )
    Span.objects.create(
        trace=trace, span_id=uuid.uuid4().hex[:16], name="agent", span_type="AGENT",
        start_ns=0, end_ns=1_000_000, status="OK",
    )  # fmt: skip
    return trace


def _diff_links(page: str) -> list[str]:
    """The hrefs of the page's diff links (data-diff-traces), unescaped."""
    found = re.findall(r"<a[^>]*data-diff-traces[^>]*>", page)
    return [html.unescape(re.search(r'href="([^"]*)"', tag).group(1)) for tag in found]


def _opens_the_diff_of(client: Client, url: str, a: str, b: str) -> None:
    assert url == f"/traces/diff/?a={a}&b={b}"
    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="trace-diff"' in page
    assert f'data-layout-url="/traces/diff/layout/?a={a}&amp;b={b}"' in page


def test_the_trace_page_offers_to_compare_it_with_another_trace(client, experiment):
    trace = _trace(experiment)
    other = _trace(experiment)
    page = client.get(f"/traces/{trace.trace_id}/").content.decode()
    form = page[page.index("data-compare-with") :]
    form = form[: form.index("</form>")]
    assert 'action="/traces/diff/"' in form and 'method="get"' in form
    assert f'<input type="hidden" name="a" value="{trace.trace_id}">' in form
    assert 'name="b"' in form
    # What the form submits: this trace as A, the id typed as B.
    _opens_the_diff_of(
        client, f"/traces/diff/?a={trace.trace_id}&b={other.trace_id}", trace.trace_id,
        other.trace_id,
    )  # fmt: skip


def test_the_compare_form_escapes_the_trace_id(client, experiment):
    trace = _trace(experiment, trace_id='tr-"><img src=x onerror=alert(1)>')
    page = client.get(f"/traces/{quote(trace.trace_id)}/").content.decode()
    assert 'value="tr-&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"' in page
    assert "<img src=x" not in page


def test_the_trace_list_has_a_diff_button_for_two_selected_traces(client, experiment):
    _trace(experiment)
    page = client.get("/traces/").content.decode()
    button = re.search(r"<button[^>]*data-diff-selected[^>]*>", page).group(0)
    assert 'data-diff-url="/traces/diff/"' in button and "disabled" in button
    # trace_list.js orders the pair by request time (A the older): each box carries it.
    assert re.search(r'name="trace" value="tr-[0-9a-f]{32}" data-time="\d+\.\d+"', page)


def test_a_playground_turn_answered_by_two_agents_links_to_their_trace_diff(client):
    echo, oracle = (Agent.objects.create(name=n, kind="builtin") for n in ("Echo", "Oracle"))
    chat = Conversation.objects.create(title="t")
    chat.agents.set([echo, oracle])
    message = Message.objects.create(conversation=chat, content="hi")
    experiment = Experiment.objects.create(name="playground")
    a, b = _trace(experiment), _trace(experiment)
    for agent, trace in ((echo, a), (oracle, b)):
        Run.objects.create(conversation=chat, message=message, agent=agent,
                           status=RunStatus.DONE, trace_id=trace.trace_id)  # fmt: skip
    page = client.get(f"/playground/c/{chat.pk}/").content.decode()
    links = _diff_links(page)
    assert len(links) == 1
    _opens_the_diff_of(client, links[0], a.trace_id, b.trace_id)


def test_a_playground_turn_answered_by_one_agent_has_no_diff_link(client):
    echo = Agent.objects.create(name="Echo", kind="builtin")
    chat = Conversation.objects.create(title="t")
    chat.agents.set([echo])
    message = Message.objects.create(conversation=chat, content="hi")
    Run.objects.create(conversation=chat, message=message, agent=echo,
                       status=RunStatus.DONE, trace_id="tr-" + "a" * 32)  # fmt: skip
    assert _diff_links(client.get(f"/playground/c/{chat.pk}/").content.decode()) == []


def test_an_evaluation_comparison_row_links_to_the_diff_of_its_traces(client):
    from bench.evaluation_pages import fill

    base, other = fill(3, 2)
    page = client.get(f"/evaluations/compare/?runs={base},{other}").content.decode()
    links = _diff_links(page)
    # One per row, beside "Judge this pair"; never on the baseline's own column.
    assert len(links) == page.count("data-judge-pair") == 3
    pairs = [dict(re.findall(r"([ab])=([^&]+)", link.split("?", 1)[1])) for link in links]

    def ids(run_id: str) -> set[str]:
        traces = TrackingRun.objects.get(run_id=run_id).linked_traces
        return set(traces.values_list("trace_id", flat=True))

    base_ids, other_ids = ids(base), ids(other)
    assert {p["a"] for p in pairs} == base_ids and {p["b"] for p in pairs} == other_ids
    _opens_the_diff_of(client, links[0], pairs[0]["a"], pairs[0]["b"])


def test_a_model_comparison_links_its_answer_pairs_to_their_diff(client, experiment):
    v1, v2 = (LoggedModel.objects.create(experiment=experiment, name="m") for _ in range(2))
    a = _trace(experiment, answer="9 to 5.", model_id=v1.model_id)
    b = _trace(experiment, answer="9 to 6.", model_id=v2.model_id)
    answers = client.get(f"/models/compare/answers/?ids={v1.model_id},{v2.model_id}")
    links = _diff_links(answers.content.decode())
    assert len(links) == 1
    _opens_the_diff_of(client, links[0], a.trace_id, b.trace_id)
