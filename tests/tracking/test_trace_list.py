from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.rows import (
    T0,
    XSS,
    XSS_ESCAPED,
    make_model,
    make_span,
    make_trace,
    trace_names_on_every_page,
)
from tracking.models import CANCELLED_TAG, Experiment, Span, Trace
from tracking.views import trace_list
from webapp.models import UserPreferences

# --- /traces/ -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_trace_list_shows_newest_first(client, experiment):
    make_trace(experiment, 1, name="older one")
    make_trace(experiment, 2, name="newer one")

    response = client.get("/traces/")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("newer one") < html.index("older one")
    assert "1.23 s" in html  # duration_ns formatted
    assert "1,234" in html  # tokens
    assert 'href="/traces/tr-00000000000000000000000000000002/"' in html


@pytest.mark.django_db
def test_trace_list_pages_with_a_keyset_cursor(client, experiment, django_assert_max_num_queries):
    for n in range(55):
        make_trace(experiment, n)

    with django_assert_max_num_queries(3) as captured:
        first = client.get("/traces/")
    sql = " ".join(q["sql"] for q in captured.captured_queries).upper()
    assert "OFFSET" not in sql
    assert "COUNT(" not in sql

    page = first.context["traces"]
    assert [t.name for t in page] == [f"trace {n}" for n in range(54, 4, -1)]
    older = first.context["older_query"]
    assert older and "before=" in older
    assert f'href="?{older}"'.replace("&", "&amp;") in first.content.decode()

    second = client.get(f"/traces/?{older}")

    assert [t.name for t in second.context["traces"]] == [f"trace {n}" for n in range(4, -1, -1)]
    assert second.context["older_query"] is None
    assert "← Newest" in second.content.decode()


@pytest.mark.django_db
def test_trace_list_cursor_breaks_ties_on_the_primary_key(client, experiment, monkeypatch):
    monkeypatch.setattr(trace_list, "TRACES_PER_PAGE", 2)
    traces = [make_trace(experiment, n, request_time=T0) for n in range(5)]

    seen = []
    url = "/traces/"
    while url:
        response = client.get(url)
        seen += [t.pk for t in response.context["traces"]]
        older = response.context["older_query"]
        url = f"/traces/?{older}" if older else None

    assert seen == sorted((t.pk for t in traces), reverse=True)


@pytest.mark.django_db
def test_trace_list_scopes_to_an_experiment(client, experiment):
    other = Experiment.objects.create(name="billing")
    make_trace(experiment, 1, name="support trace")
    make_trace(other, 2, name="billing trace")

    response = client.get(f"/traces/?experiment={other.pk}")

    html = response.content.decode()
    assert "billing trace" in html
    assert "support trace" not in html
    assert "of experiment <strong>billing</strong>" in html


@pytest.mark.django_db
def test_trace_list_scopes_to_a_model_version_and_keeps_the_scope_when_paging(
    client, experiment, monkeypatch
):
    monkeypatch.setattr(trace_list, "TRACES_PER_PAGE", 1)
    model = make_model(experiment)
    make_trace(experiment, 1, name="v1 a", model_id=model.model_id)
    make_trace(experiment, 2, name="unlinked")
    make_trace(experiment, 3, name="v1 b", model_id=model.model_id)

    first = client.get(f"/traces/?model={model.model_id}")
    second = client.get(f"/traces/?{first.context['older_query']}")

    assert [t.name for t in first.context["traces"]] == ["v1 b"]
    assert [t.name for t in second.context["traces"]] == ["v1 a"]
    assert second.context["older_query"] is None


@pytest.mark.django_db
def test_trace_list_rejects_a_malformed_cursor(client):
    assert client.get("/traces/?before=yesterday").status_code == 400
    assert client.get("/traces/?before=2025-01-01T00:00:00|x").status_code == 400
    # A naive time would compare against stored UTC times ambiguously.
    assert client.get("/traces/?before=2025-01-01T00:00:00|3").status_code == 400


@pytest.mark.django_db
def test_trace_list_404s_for_an_unknown_experiment(client):
    assert client.get("/traces/?experiment=999").status_code == 404
    assert client.get("/traces/?experiment=abc").status_code == 404


@pytest.mark.django_db
def test_trace_list_says_when_there_are_no_traces(client):
    response = client.get("/traces/")

    assert response.status_code == 200
    assert "No traces yet" in response.content.decode()


@pytest.mark.django_db
def test_trace_list_queries_do_not_grow_with_rows(
    client, experiment, django_assert_max_num_queries
):
    for i in range(3):
        model = make_model(experiment, name=f"agent-{i}")
        for n in range(4):
            make_trace(experiment, i * 10 + n, model_id=model.model_id)

    # traces, model names, model choices, experiment choices
    with django_assert_max_num_queries(4):
        response = client.get("/traces/")

    assert response.content.decode().count("agent-") >= 12


@pytest.mark.django_db
def test_trace_list_survives_a_model_id_that_is_not_routable(client, experiment):
    # model_id is copied from client-sent metadata; a "/" in it must not break the page.
    make_trace(experiment, 1, model_id="team/agent")

    response = client.get("/traces/")

    assert response.status_code == 200
    assert "team/agent" in response.content.decode()


# --- The query language on the page ----------------------------------------------------------


@pytest.mark.django_db
def test_trace_list_filters_with_the_query_in_the_url(client, experiment):
    make_trace(experiment, 1, name="quick error", state="ERROR", duration_ns=100_000_000)
    make_trace(experiment, 2, name="slow error", state="ERROR", duration_ns=5_000_000_000)
    make_trace(experiment, 3, name="slow ok", state="OK", duration_ns=5_000_000_000)

    response = client.get("/traces/", {"q": "state = ERROR and duration > 2s"})

    assert response.status_code == 200
    assert [t.name for t in response.context["traces"]] == ["slow error"]
    html = response.content.decode()
    assert 'value="state = ERROR and duration &gt; 2s"' in html


@pytest.mark.django_db
def test_trace_list_shows_an_invalid_query_inline_with_its_position(client, experiment):
    make_trace(experiment, 1)

    response = client.get("/traces/", {"q": "state = OK and duration > 2 parsecs)"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Invalid query: unexpected &#x27;)&#x27; (at position 35)" in html
    assert "state = OK and duration &gt; 2 parsecs)\n" + " " * 35 + "^" in html
    assert 'aria-invalid="true"' in html
    assert "<h1>Traces</h1>" in html  # the whole page, with the bar to fix the query in


@pytest.mark.django_db
def test_trace_list_answers_htmx_with_the_list_fragment_and_bad_queries_inline(client, experiment):
    make_trace(experiment, 1, name="only one")

    good = client.get("/traces/", {"q": "name ~ only"}, headers={"HX-Request": "true"})
    bad = client.get("/traces/", {"q": "name ="}, headers={"HX-Request": "true"})

    assert good.status_code == 200
    assert good.content.decode().lstrip().startswith('<div id="trace-list"')
    assert "<h1>" not in good.content.decode()
    assert "only one" in good.content.decode()
    assert bad.status_code == 200
    assert "expected a value after =" in bad.content.decode()
    assert "Vary" in good.headers and "HX-Request" in good.headers["Vary"]


@pytest.mark.django_db
def test_trace_list_never_500s_on_odd_input(client, experiment):
    make_trace(experiment, 1)
    queries = ["(" * 300, "tokens > 1e999", "time > -99999999999999d", "tag.`", "'" * 3]

    for q in queries:
        assert client.get("/traces/", {"q": q}).status_code == 200, q
    assert client.get("/traces/", {"sort": "nonsense"}).status_code == 200
    assert client.get("/traces/", {"after": "garbage"}).status_code == 400
    assert client.get("/traces/", {"sort": "tokens", "before": "x|1"}).status_code == 400


@pytest.mark.django_db
def test_quick_filters_rewrite_the_query_in_the_bar(client, experiment):
    make_trace(experiment, 1)

    response = client.get("/traces/", {"q": "refund and state = OK"})

    quick = dict(response.context["quick"]["choices"])
    states = {label: (href, active) for label, href, active in quick["state"]}
    assert states["OK"][1] is True
    assert states["Error"][0] == "?q=refund+and+state+%3D+ERROR"
    assert states["Any"][0] == "?q=refund"
    hours = {label: href for label, href, _ in quick["time"]}
    assert hours["1 hour"] == "?q=refund+and+state+%3D+OK+and+time+%3E+-1h"


@pytest.mark.django_db
def test_quick_model_filter_lists_model_names(client, experiment):
    make_model(experiment, name="support agent")

    response = client.get("/traces/")

    models = dict(response.context["quick"]["choices"])["model"]
    assert ("support agent", "?q=model+%3D+%22support+agent%22", False) in models


@pytest.mark.django_db
def test_trace_list_keeps_query_and_scope_on_the_older_link(client, experiment, monkeypatch):
    monkeypatch.setattr(trace_list, "TRACES_PER_PAGE", 2)
    for n in range(5):
        make_trace(experiment, n, state="ERROR" if n % 2 else "OK")

    first = client.get("/traces/", {"q": "state = OK", "experiment": experiment.pk})
    second = client.get(f"/traces/?{first.context['older_query']}")

    assert [t.name for t in first.context["traces"]] == ["trace 4", "trace 2"]
    assert [t.name for t in second.context["traces"]] == ["trace 0"]


# --- Sorting and keyset pages ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-duration", ["d5", "d3a", "d3b", "d1", "none"]),
        ("duration", ["none", "d1", "d3b", "d3a", "d5"]),
        ("-tokens", ["d1", "d3a", "d3b", "d5", "none"]),
        ("tokens", ["none", "d5", "d3b", "d3a", "d1"]),
    ],
)
def test_trace_list_sorts_by_duration_and_tokens_across_pages(
    client, experiment, monkeypatch, sort, expected
):
    monkeypatch.setattr(trace_list, "TRACES_PER_PAGE", 2)
    make_trace(experiment, 1, name="d1", duration_ns=1, total_tokens=50)
    make_trace(experiment, 2, name="d3b", duration_ns=3, total_tokens=30)
    make_trace(experiment, 3, name="d3a", duration_ns=3, total_tokens=30)
    make_trace(experiment, 4, name="d5", duration_ns=5, total_tokens=10)
    make_trace(experiment, 5, name="none", duration_ns=None, total_tokens=None)

    # Ties go by primary key in the order's direction; unknown values sort below all others.
    assert trace_names_on_every_page(client, f"/traces/?sort={sort}") == expected


@pytest.mark.django_db
def test_trace_list_pages_see_no_row_twice_and_skip_none_while_traces_arrive(
    client, experiment, monkeypatch
):
    monkeypatch.setattr(trace_list, "TRACES_PER_PAGE", 3)
    for n in range(0, 20, 2):
        make_trace(experiment, n, request_time=T0)  # many equal times: the pk breaks ties
    before = {f"trace {n}" for n in range(0, 20, 2)}

    seen = []
    url = "/traces/"
    arriving = iter(range(100, 110))
    while url:
        response = client.get(url)
        seen += [t.name for t in response.context["traces"]]
        # Between page loads, new traces arrive: some newer, some at the same time.
        n = next(arriving)
        make_trace(experiment, n, request_time=T0 if n % 2 else T0 + timedelta(hours=1))
        older = response.context["older_query"]
        url = f"/traces/?{older}" if older else None

    assert len(seen) == len(set(seen))
    assert before <= set(seen)


# --- Live rows -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_first_page_polls_for_new_rows_and_gets_204_when_there_are_none(client, experiment):
    make_trace(experiment, 1)

    page = client.get("/traces/", {"q": "state = OK"})
    live = page.context["live_query"]
    poll = client.get(f"/traces/?{live}", headers={"HX-Request": "true"})

    assert 'hx-trigger="every 5s"' in page.content.decode()
    assert "q=state" in live and "after=" in live
    assert poll.status_code == 204


@pytest.mark.django_db
def test_a_poll_answers_the_new_matching_rows_and_the_next_poller(client, experiment):
    make_trace(experiment, 1)
    live = client.get("/traces/", {"q": "state = OK"}).context["live_query"]
    make_trace(experiment, 2, name="new ok")
    make_trace(experiment, 3, name="new error", state="ERROR")

    poll = client.get(f"/traces/?{live}", headers={"HX-Request": "true"})

    html = poll.content.decode()
    assert poll.status_code == 200
    assert "new ok" in html and "new error" not in html and "trace 1" not in html
    assert html.lstrip().startswith('<tbody class="live"')
    assert "after=2025-06-01T12%3A00%3A02.000000Z" in html  # the new top row


@pytest.mark.django_db
def test_older_pages_and_other_sorts_do_not_poll(client, experiment, monkeypatch):
    monkeypatch.setattr(trace_list, "TRACES_PER_PAGE", 1)
    make_trace(experiment, 1)
    make_trace(experiment, 2)

    first = client.get("/traces/")
    second = client.get(f"/traces/?{first.context['older_query']}")
    by_tokens = client.get("/traces/", {"sort": "-tokens"})

    assert second.context["live_query"] is None
    assert by_tokens.context["live_query"] is None
    assert "data-poll" not in second.content.decode()


# --- Columns -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_chosen_columns_are_remembered(client, experiment):
    make_trace(experiment, 1, tags={"team": "billing", "mlflow.user": "x"}, response_preview="ok!")

    default = client.get("/traces/").content.decode()
    saved = client.post(
        "/traces/columns/", {"column": ["tags", "response", "bogus"], "next": "/traces/?q=x"}
    )
    chosen = client.get("/traces/").content.decode()

    assert '<th scope="col">Tags</th>' not in default
    assert saved.status_code == 302 and saved.url == "/traces/?q=x"
    assert '<th scope="col">Tags</th>' in chosen
    assert '<th scope="col">Response</th>' in chosen
    assert '<th scope="col">State</th>' not in chosen
    assert "team</span>=billing" in chosen
    assert "mlflow.user" not in chosen


@pytest.mark.django_db
def test_a_signed_in_users_columns_follow_them_to_another_browser(client, experiment, settings):
    settings.SPYGLASS_AUTH = True
    make_trace(experiment, 1)
    alice = User.objects.create_user("alice", password="wonder-land-42")
    client.force_login(alice)

    client.post("/traces/columns/", {"column": ["spans"]})
    elsewhere = Client()
    elsewhere.force_login(alice)
    html = elsewhere.get("/traces/").content.decode()

    assert UserPreferences.objects.get(user=alice).trace_list_columns == ["spans"]
    assert '<th scope="col" class="num">Spans</th>' in html
    assert "Duration</a></th>" not in html


@pytest.mark.django_db
def test_columns_redirect_only_to_this_site(client):
    response = client.post("/traces/columns/", {"column": ["time"], "next": "https://evil.test/"})

    assert response.url == "/traces/"


# --- Bulk actions --------------------------------------------------------------------------


@pytest.mark.django_db
def test_bulk_tag_sets_a_tag_on_the_selected_traces(client, experiment):
    a = make_trace(experiment, 1, tags={"keep": "1"})
    b = make_trace(experiment, 2)
    c = make_trace(experiment, 3)

    response = client.post(
        "/traces/bulk/",
        {"action": "tag", "trace": [a.trace_id, b.trace_id], "tag_key": "reviewed",
         "tag_value": "yes", "next": "/traces/?q=x"},
    )  # fmt: skip

    assert response.status_code == 302 and response.url == "/traces/?q=x"
    a.refresh_from_db(), b.refresh_from_db(), c.refresh_from_db()
    assert a.tags == {"keep": "1", "reviewed": "yes"}
    assert b.tags == {"reviewed": "yes"}
    assert c.tags == {}
    assert "Tagged 2 traces." in client.get("/traces/").content.decode()


@pytest.mark.django_db
def test_bulk_delete_asks_for_confirmation_first(client, experiment):
    a = make_trace(experiment, 1, name="doomed")
    make_span(a, "s1", 0)
    b = make_trace(experiment, 2, name="spared")

    asked = client.post("/traces/bulk/", {"action": "delete", "trace": [a.trace_id]})

    assert asked.status_code == 200
    assert "Delete 1 trace?" in asked.content.decode()
    assert Trace.objects.count() == 2

    done = client.post(
        "/traces/bulk/", {"action": "delete", "confirm": "yes", "trace": [a.trace_id]}
    )

    assert done.status_code == 302
    assert list(Trace.objects.values_list("name", flat=True)) == ["spared"]
    assert not Span.objects.exists()
    assert b.trace_id in client.get("/traces/").content.decode()


@pytest.mark.django_db
def test_bulk_actions_refuse_gets_and_unknown_actions(client, experiment):
    a = make_trace(experiment, 1)

    assert client.get("/traces/bulk/").status_code == 405
    assert (
        client.post("/traces/bulk/", {"action": "explode", "trace": [a.trace_id]}).status_code
        == 400
    )
    assert client.post("/traces/bulk/", {"action": "tag", "trace": [a.trace_id]}).status_code == 302
    too_long = {"action": "tag", "trace": [a.trace_id], "tag_key": "k" * 251, "tag_value": "v"}
    assert client.post("/traces/bulk/", too_long).status_code == 302
    a.refresh_from_db()
    assert a.tags == {}  # no key or too long: no tag


# --- Untrusted content -----------------------------------------------------------------------


@pytest.mark.django_db
def test_trace_list_renders_hostile_names_previews_and_tags_inert(client, experiment):
    trace = make_trace(
        experiment, 1, name=XSS, request_preview=XSS, response_preview=XSS,
        tags={XSS: XSS}, model_id=XSS,
    )  # fmt: skip
    make_span(trace, "s1", 0, name=XSS, inputs={"x": XSS})
    client.post("/traces/columns/", {"column": list(trace_list.COLUMNS)})

    page = client.get("/traces/", {"q": f'span.name = "{XSS}"'})
    bad = client.get("/traces/", {"q": f"{XSS} ="})

    for response in (page, bad):
        html = response.content.decode()
        assert "<script>alert" not in html
        assert XSS_ESCAPED in html
    assert [t.trace_id for t in page.context["traces"]] == [trace.trace_id]


# --- Query counts ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_trace_list_query_count_does_not_grow_with_filters_or_columns(
    client, experiment, django_assert_max_num_queries
):
    for n in range(30):
        trace = make_trace(experiment, n, model_id=make_model(experiment).model_id,
                           tags={"n": str(n)})  # fmt: skip
        make_span(trace, "s1", 0, name="search")
    client.post("/traces/columns/", {"column": list(trace_list.COLUMNS)})

    # traces, model names, model and experiment choices, and the session that holds the columns
    with django_assert_max_num_queries(5):
        response = client.get("/traces/", {"q": "span.name = search and tag.n ~ 1 or hi"})

    assert len(response.context["traces"]) == 30


# --- The API takes the same query ----------------------------------------------------------


@pytest.mark.django_db
def test_api_trace_list_takes_the_query_language(client, experiment):
    make_trace(experiment, 1, name="slow", duration_ns=5_000_000_000)
    make_trace(experiment, 2, name="fast", duration_ns=1_000)

    good = client.get("/api/v1/traces/", {"q": "duration > 2s"})
    bad = client.get("/api/v1/traces/", {"q": "duration > "})

    assert [t["name"] for t in good.json()["results"]] == ["slow"]
    assert bad.status_code == 400
    assert "(at position 11)" in bad.json()["q"][0]


@pytest.mark.django_db
def test_nul_characters_anywhere_are_refused_not_a_500(client, experiment):
    a = make_trace(experiment, 1)

    # Refused before any view, for every URL (webapp/limits.py).
    assert client.get("/traces/", {"model": "m-\x00"}).status_code == 400
    assert "NUL character" in client.get("/traces/", {"q": "\x00"}).content.decode()
    assert client.get("/traces/", {"before": "\x00|1"}).status_code == 400
    tag = {"action": "tag", "trace": [a.trace_id, "\x00"], "tag_key": "k\x00", "tag_value": "v"}
    assert client.post("/traces/bulk/", tag).status_code == 302
    a.refresh_from_db()
    assert a.tags == {}


@pytest.mark.django_db
def test_a_poll_with_nothing_new_costs_one_query(client, experiment, django_assert_num_queries):
    make_trace(experiment, 1)
    live = client.get("/traces/", {"q": "state = OK"}).context["live_query"]

    with django_assert_num_queries(1):
        poll = client.get(f"/traces/?{live}", headers={"HX-Request": "true"})

    assert poll.status_code == 204


@pytest.mark.django_db
def test_the_active_experiments_scope_the_list(client, experiment):
    other = Experiment.objects.create(name="billing-agent")
    Experiment.objects.create(name="gone", lifecycle_stage="deleted")
    make_trace(experiment, 1)
    make_trace(other, 2)

    response = client.get("/traces/", {"q": "state = OK"})

    (name, options), *_ = response.context["quick"]["choices"]
    assert name == "experiment"
    assert [(label, active) for label, _, active in options] == [
        ("Any", True), ("billing-agent", False), ("Default", False), (experiment.name, False)
    ]  # fmt: skip
    scoped = client.get("/traces/" + options[1][1])
    assert [t.name for t in scoped.context["traces"]] == ["trace 2"]
    assert scoped.context["query"] == "state = OK"  # the query stays
    (_, options), *_ = scoped.context["quick"]["choices"]
    assert [label for label, _, active in options if active] == ["billing-agent"]


@pytest.mark.django_db
def test_one_experiment_needs_no_experiment_filter(client):
    Experiment.objects.exclude(pk=0).delete()

    response = client.get("/traces/")

    assert "experiment" not in [name for name, _ in response.context["quick"]["choices"]]


@pytest.mark.django_db
def test_trace_lists_show_a_chat_request_and_answer_as_text(client, experiment):
    model = make_model(experiment)
    request = [{"role": "user", "content": "Where is my order?", "refusal": None}]
    answer = {"choices": [{"message": {"role": "assistant", "content": "It ships today."}}]}
    make_trace(
        experiment,
        1,
        model_id=model.model_id,
        request_preview=json.dumps(request),
        response_preview=json.dumps(answer),
    )

    client.post("/traces/columns/", {"column": ["request", "response"]})
    listed = client.get("/traces/")
    recent = client.get(f"/models/{model.model_id}/traces/")

    for response in (listed, recent):
        html = response.content.decode()
        assert "Where is my order?" in html
        assert "refusal" not in html
    assert "It ships today." in listed.content.decode()


@pytest.mark.django_db
def test_trace_list_shows_a_cancelled_answer_as_cancelled_and_filters_it(
    client, experiment, django_assert_max_num_queries
):
    make_trace(experiment, 1, name="answered")
    make_trace(experiment, 2, name="stopped answer", tags={CANCELLED_TAG: "true"})

    with django_assert_max_num_queries(3):  # as many as without a cancelled row
        response = client.get("/traces/")

    html = response.content.decode()
    assert html.count('class="badge state-cancelled"') == 1
    assert ">Cancelled</span>" in html
    assert html.count('class="badge state-ok"') == 1
    assert "?q=state+%3D+CANCELLED" in html  # a quick filter, as for the other states

    cancelled = client.get("/traces/", {"q": "state = CANCELLED"})
    ok = client.get("/traces/", {"q": "status = ok"})

    assert [t.name for t in cancelled.context["traces"]] == ["stopped answer"]
    assert [t.name for t in ok.context["traces"]] == ["answered"]


@pytest.mark.django_db
def test_trace_list_shows_a_cancelled_answer_arriving_live_as_cancelled(client, experiment):
    make_trace(experiment, 1, name="answered")
    top = client.get("/traces/").context["live_query"]
    make_trace(experiment, 2, name="stopped answer", tags={CANCELLED_TAG: "true"})

    response = client.get(f"/traces/?{top}")

    assert 'class="badge state-cancelled"' in response.content.decode()
