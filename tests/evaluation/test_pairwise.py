"""Pairwise review: a judgement stored as MLflow feedback on both traces, judged again as an
override that keeps the history, summarised per version pair; its access, bad input,
escaping, and the links from a playground conversation and an evaluation comparison."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from django.utils import timezone

from access.models import ExperimentGrant, Level
from evaluation import pairwise
from playground.models import Agent, Conversation, Message, Run, RunStatus
from tests.xss import CORPUS, injected_markup
from tracking.models import Assessment, Experiment, LoggedModel, Trace

pytestmark = pytest.mark.django_db


def _trace(experiment: Experiment, answer: str = "an answer", model_id: str = "", **kw) -> Trace:
    return Trace.objects.create(
        trace_id="tr-" + uuid.uuid4().hex,
        experiment=experiment,
        request_time=timezone.now(),
        state="OK",
        request_preview=kw.pop("question", "How do I reset my password?"),
        response_preview=answer,
        model_id=model_id,
        **kw,
    )


def _url(a: Trace, b: Trace) -> str:
    return f"/review/pairwise/?a={a.trace_id}&b={b.trace_id}"


def _judge(client: Client, a: Trace, b: Trace, choice: str, rationale: str = ""):
    return client.post(_url(a, b), {"choice": choice, "rationale": rationale})


def _mine(trace: Trace) -> list[Assessment]:
    return list(Assessment.objects.filter(trace=trace, name="pairwise_preference").in_order())


@pytest.fixture
def signed_in_bob(client, bob, auth_on) -> Client:
    client.force_login(bob)
    return client


def test_the_page_shows_both_answers_under_the_one_question(client, experiment):
    a = _trace(experiment, answer="Click 'Forgot password'.")
    b = _trace(experiment, answer="Ask an admin.")
    html = client.get(_url(a, b)).content.decode()
    assert html.count("How do I reset my password?") == 1
    assert "Click &#x27;Forgot password&#x27;." in html and "Ask an admin." in html
    assert 'data-side="A"' in html and 'data-side="B"' in html
    assert 'value="b" data-key="2"' in html and "Enter submits" in html


def test_different_inputs_are_each_shown_above_their_answer(client, experiment):
    a = _trace(experiment, question="first question")
    b = _trace(experiment, question="second question")
    html = client.get(_url(a, b)).content.decode()
    assert "different inputs" in html and "first question" in html and "second question" in html


def test_picking_b_stores_feedback_on_both_traces_by_the_reviewer(signed_in_bob, experiment):
    a, b = _trace(experiment), _trace(experiment)
    response = _judge(signed_in_bob, a, b, "b", "B answers the question.")
    assert response.status_code == 302 and response.url == _url(a, b)

    [on_a], [on_b] = _mine(a), _mine(b)
    assert (on_a.value, on_b.value) == ("worse", "better")
    for mine, other, position in ((on_a, b, "A"), (on_b, a, "B")):
        assert mine.kind == "feedback" and mine.valid
        assert (mine.source_type, mine.source_id) == ("HUMAN", "bob")
        assert mine.rationale == "B answers the question."
        assert mine.metadata == {
            "pairwise.pair": ",".join(sorted([a.trace_id, b.trace_id])),
            "pairwise.other_trace": other.trace_id,
            "pairwise.position": position,
        }
    page = signed_in_bob.get(_url(a, b)).content.decode()
    assert "Saved: B is better." in page
    assert 'value="b" data-key="2" checked' in page and "B answers the question." in page


def test_the_mlflow_api_returns_the_judgement_with_the_trace(signed_in_bob, settings, experiment):
    a, b = _trace(experiment), _trace(experiment)
    _judge(signed_in_bob, a, b, "tie", "both fine")
    settings.SPYGLASS_AUTH = False  # the MLflow API signs in with tokens, not sessions
    info = Client().get(f"/api/3.0/mlflow/traces/{a.trace_id}").json()["trace"]["trace_info"]
    [assessment] = info["assessments"]
    assert assessment["assessment_name"] == "pairwise_preference"
    assert assessment["feedback"]["value"] == "tie"
    assert assessment["source"] == {"source_type": "HUMAN", "source_id": "bob"}
    assert assessment["metadata"]["pairwise.other_trace"] == b.trace_id


def test_judging_again_overrides_and_keeps_the_history(signed_in_bob, experiment):
    a, b = _trace(experiment), _trace(experiment)
    _judge(signed_in_bob, a, b, "a", "A first")
    # The same pair shown the other way round is the same pair.
    _judge(signed_in_bob, b, a, "a", "on second thought, B")

    for trace, latest in ((a, "worse"), (b, "better")):
        old, new = _mine(trace)
        assert not old.valid and new.valid
        assert new.overrides == old.assessment_id
        assert new.value == latest and new.rationale == "on second thought, B"
    assert pairwise.current_choice(a, b, "bob") == ("b", "on second thought, B")


def test_each_reviewer_keeps_a_judgement_of_their_own(signed_in_bob, alice, experiment):
    a, b = _trace(experiment), _trace(experiment)
    _judge(signed_in_bob, a, b, "a")
    other = Client()
    other.force_login(alice)
    _judge(other, a, b, "b")
    assert sorted((x.source_id, x.value, x.valid) for x in _mine(a)) == [
        ("alice", "worse", True),
        ("bob", "better", True),
    ]


def test_the_summary_counts_valid_judgements_per_version_pair(client, experiment):
    v1, v2, v3 = (
        LoggedModel.objects.create(experiment=experiment, name="support") for _ in range(3)
    )

    def judged(model_a, model_b, choice, reviewer="bob"):
        a = _trace(experiment, model_id=model_a.model_id)
        b = _trace(experiment, model_id=model_b.model_id)
        pairwise.judge(a, b, choice, "", reviewer)
        return a, b

    judged(v1, v2, "b")
    judged(v2, v1, "a")  # v2 shown first and preferred: still v2 over v1
    judged(v1, v2, "tie")
    overridden = judged(v1, v2, "a")
    pairwise.judge(*overridden, "b", "", "bob")  # only the latest counts
    judged(v1, v3, "a")

    [tally] = pairwise.tallies(Trace.objects.all(), v1.model_id, v2.model_id)
    assert (tally.a_preferred, tally.b_preferred, tally.ties, tally.total) == (0, 3, 1, 4)
    [swapped] = pairwise.tallies(Trace.objects.all(), v2.model_id, v1.model_id)
    assert (swapped.a_preferred, swapped.b_preferred, swapped.ties) == (3, 0, 1)

    html = client.get(f"/review/pairwise/summary/?a={v1.model_id}&b={v2.model_id}").content.decode()
    assert "B preferred in 3 of 4" in html and "support v2" in html
    every = client.get("/review/pairwise/summary/").content.decode()
    assert every.count("data-pair=") == 2 and "A preferred in 1 of 1" in every


def test_the_summary_counts_only_judgements_of_readable_traces(
    client, charlie, auth_on, experiment
):
    hidden = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=hidden, level=Level.NONE)
    v1, v2 = (LoggedModel.objects.create(experiment=experiment, name="m") for _ in range(2))
    seen = (_trace(experiment, model_id=v1.model_id), _trace(experiment, model_id=v2.model_id))
    pairwise.judge(*seen, "b", "", "bob")
    unseen = (_trace(hidden, model_id=v1.model_id), _trace(hidden, model_id=v2.model_id))
    pairwise.judge(*unseen, "b", "", "bob")
    client.force_login(charlie)
    html = client.get(f"/review/pairwise/summary/?a={v1.model_id}&b={v2.model_id}").content
    assert b"B preferred in 1 of 1" in html


def test_a_viewer_sees_the_pair_but_may_not_judge_it(client, charlie, auth_on, experiment):
    a, b = _trace(experiment), _trace(experiment)
    client.force_login(charlie)
    page = client.get(_url(a, b))
    assert page.status_code == 200 and b"data-pairwise-form" not in page.content
    assert _judge(client, a, b, "a").status_code == 403
    assert not Assessment.objects.exists()


def test_a_trace_the_reviewer_may_not_read_is_not_found(signed_in_bob, experiment):
    hidden = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=hidden, level=Level.NONE)
    a, b = _trace(experiment), _trace(hidden)
    assert signed_in_bob.get(_url(a, b)).status_code == 404
    assert _judge(signed_in_bob, a, b, "a").status_code == 404
    assert not Assessment.objects.exists()


@pytest.mark.parametrize(
    "query",
    ["", "?a=tr-1", "?a=tr-1&b=tr-1", f"?a={'x' * 65}&b=tr-2", "?a=tr-1%00&b=tr-2"],
)
def test_bad_pairs_are_refused(client, query):
    assert client.get(f"/review/pairwise/{query}").status_code == 400


def test_unknown_traces_are_not_found(client, experiment):
    a = _trace(experiment)
    assert client.get(f"/review/pairwise/?a={a.trace_id}&b=tr-nope").status_code == 404


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"choice": "c"}, "Pick A, B or a tie."),
        ({}, "Pick A, B or a tie."),
        ({"choice": "a", "rationale": "x" * 10_001}, "at most 10,000 characters"),
    ],
)
def test_a_bad_judgement_is_shown_with_its_error_and_nothing_is_stored(
    client, experiment, data, error
):
    a, b = _trace(experiment), _trace(experiment)
    response = client.post(_url(a, b), data)
    assert response.status_code == 422 and error in response.content.decode()
    assert not Assessment.objects.exists()


def test_bad_summary_queries_are_refused(client):
    assert client.get("/review/pairwise/summary/?a=m-1").status_code == 400
    assert client.get("/review/pairwise/summary/?a=m-1&b=m-1").status_code == 400


def test_the_corpus_is_escaped_on_the_pair_and_the_summary(client, experiment):
    for text in CORPUS:
        model_a = LoggedModel.objects.create(experiment=experiment, name=text)
        model_b = LoggedModel.objects.create(experiment=experiment, name=text)
        a = _trace(experiment, answer=text, question=text, model_id=model_a.model_id)
        b = _trace(experiment, answer=text, question=text + "!", model_id=model_b.model_id)
        pairwise.judge(a, b, "a", text, "bob")
        page = client.get(_url(a, b)).content.decode()
        assert injected_markup(page) == [], text
        assert text not in page
        summary = client.get(
            f"/review/pairwise/summary/?a={model_a.model_id}&b={model_b.model_id}"
        ).content.decode()
        assert injected_markup(summary) == [], text
    assert injected_markup(client.get("/review/pairwise/summary/").content.decode()) == []


def test_a_playground_turn_answered_by_two_agents_links_to_their_comparison(client):
    echo, oracle = (Agent.objects.create(name=n, kind="builtin") for n in ("Echo", "Oracle"))
    chat = Conversation.objects.create(title="t")
    chat.agents.set([echo, oracle])
    message = Message.objects.create(conversation=chat, content="hi")
    done = Run.objects.create(conversation=chat, message=message, agent=echo,
                              status=RunStatus.DONE, trace_id="tr-" + "a" * 32)  # fmt: skip
    running = Run.objects.create(conversation=chat, message=message, agent=oracle,
                                 task_id=str(uuid.UUID(int=11)))  # fmt: skip
    html = client.get(f"/playground/c/{chat.pk}/").content.decode()
    b = f"tr-{uuid.UUID(int=11).hex}"
    assert f'href="/review/pairwise/?a={done.trace_id}&amp;b={b}">Compare these answers' in html
    assert html.count("data-compare") == 1
    assert running.trace_id == ""


def test_an_evaluation_comparison_row_links_to_judging_the_pair(client):
    from bench.evaluation_pages import fill

    base, other = fill(3, 2)
    html = client.get(f"/evaluations/compare/?runs={base},{other}").content.decode()
    assert html.count("data-judge-pair") == 3
    link = html[html.index("data-judge-pair") :].split('href="', 1)[1].split('"', 1)[0]
    response = client.get(link.replace("&amp;", "&"))
    assert response.status_code == 200 and b'data-side="B"' in response.content


def test_a_model_comparison_links_its_answer_pairs_and_their_summary(client, experiment):
    v1, v2 = (LoggedModel.objects.create(experiment=experiment, name="m") for _ in range(2))
    a = _trace(experiment, answer="9 to 5.", question="Hours?", model_id=v1.model_id)
    b = _trace(experiment, answer="9 to 6.", question="Hours?", model_id=v2.model_id)
    ids = f"{v1.model_id},{v2.model_id}"
    answers = client.get(f"/models/compare/answers/?ids={ids}").content.decode()
    assert f'href="/review/pairwise/?a={a.trace_id}&amp;b={b.trace_id}">judge this pair' in answers
    page = client.get(f"/models/compare/?ids={ids}").content.decode()
    summary = f"/review/pairwise/summary/?a={v1.model_id}&amp;b={v2.model_id}"
    assert f'href="{summary}">Pairwise reviews of these versions' in page
