"""The trace list's session parts: `session = <id>` / `user = <id>` in the query language and
the "session" column of the column chooser."""

from __future__ import annotations

import pytest

from tests.rows import make_trace
from tracking import search
from tracking.models import Trace
from webapp.models import UserPreferences

pytestmark = pytest.mark.django_db


def _matching(query: str) -> set[int]:
    traces = Trace.objects.filter(search.compile_query(query))
    return set(traces.values_list("request_time__second", flat=True))


def _three(experiment) -> None:
    make_trace(experiment, 1, session_id="conv-1", user_id="alice")
    make_trace(experiment, 2, session_id="conv-1", user_id="bob")
    make_trace(experiment, 3)


def test_session_and_user_filter_on_their_columns(experiment):
    _three(experiment)

    assert _matching("session = conv-1") == {1, 2}
    assert _matching("user = alice") == {1}
    assert _matching("session = conv-1 and user = bob") == {2}
    assert _matching("user in (alice, bob)") == {1, 2}
    assert _matching("session != conv-1") == {3}  # a trace with no session is not in it
    assert _matching("session ~ CONV") == {1, 2}


def test_session_and_user_refuse_ordering_operators():
    with pytest.raises(search.SearchError, match="session"):
        search.parse("session > a")


def test_a_bad_session_query_is_a_message_on_the_page(client, experiment):
    response = client.get("/traces/?q=user >= x")

    assert response.status_code == 200
    assert "Invalid query" in response.content.decode()


def test_the_trace_list_filters_by_session_and_shows_the_column(client, experiment):
    _three(experiment)
    client.post("/traces/columns/", {"column": ["time", "session"]})

    html = client.get("/traces/?q=session = conv-1").content.decode()

    assert '<th scope="col">Session</th>' in html
    assert html.count(f'href="/sessions/conv-1/?experiment={experiment.pk}"') == 2
    assert "trace 3" not in html


def test_the_session_column_is_chosen_not_default(client, experiment, alice, settings):
    settings.SPYGLASS_AUTH = True
    make_trace(experiment, 1, session_id="conv-1")
    client.force_login(alice)

    assert '<th scope="col">Session</th>' not in client.get("/traces/").content.decode()
    client.post("/traces/columns/", {"column": ["session"]})
    assert UserPreferences.objects.get(user=alice).trace_list_columns == ["session"]
