from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from tests.rows import T0, make_model, make_span, make_trace
from tracking import search
from tracking.models import CANCELLED_TAG, ModelVersion, RegisteredModel, Trace, TraceState
from tracking.search import (
    And,
    Comparison,
    Not,
    Or,
    SearchError,
    Text,
    compile_query,
    parse,
    top_level_clauses,
    unparse,
    with_clause,
)

# --- Parsing (no database) ------------------------------------------------------------------


def test_an_empty_query_is_no_filter():
    assert parse("") is None
    assert parse("   ") is None


def test_a_comparison_parses_to_field_operator_and_value():
    node = parse("state = ERROR")

    assert node == Comparison("state", "=", ("ERROR",), 0, (8,))


@pytest.mark.parametrize("op", ["=", "!=", ">", ">=", "<", "<="])
def test_every_ordering_operator_parses(op):
    assert parse(f"duration {op} 2s").op == op


def test_operators_need_no_spaces():
    assert parse("tokens>=100") == Comparison("tokens", ">=", ("100",), 0, (8,))


def test_and_binds_tighter_than_or():
    node = parse("state = ERROR or state = OK and tokens > 5")

    assert isinstance(node, Or)
    assert node.operands[0].field == "state"
    assert isinstance(node.operands[1], And)


def test_parentheses_group_before_and():
    node = parse("(state = ERROR or state = OK) and tokens > 5")

    assert isinstance(node, And)
    assert isinstance(node.operands[0], Or)


def test_not_negates_the_next_term():
    node = parse("not state = ERROR and tokens > 5")

    assert isinstance(node, And)
    assert node.operands[0] == Not(Comparison("state", "=", ("ERROR",), 4, (12,)))


def test_keywords_are_case_insensitive():
    assert isinstance(parse("state = OK OR state = ERROR"), Or)
    assert isinstance(parse("NOT state = OK"), Not)


def test_in_and_not_in_take_a_list():
    assert parse("state in (OK, ERROR)").values == ("OK", "ERROR")
    assert parse("span.type not in (LLM, 'TOOL')").op == "not in"


def test_bare_words_and_strings_are_free_text_joined_by_and():
    node = parse('refund "order 42"')

    assert node == And((Text("refund", 0), Text("order 42", 7)))


def test_quoted_strings_keep_spaces_and_escapes():
    assert parse(r'name = "say \"hi\" now"').values == ('say "hi" now',)
    assert parse("name = 'it''s'") == And(
        (Comparison("name", "=", ("it",), 0, (7,)), Text("s", 11))
    )


def test_prefixed_fields_keep_dotted_keys():
    assert parse("tag.mlflow.user = alice").field == "tag.mlflow.user"
    field = parse("span.attributes.llm.model_name ~ gpt").field
    assert field == "span.attributes.llm.model_name"
    assert parse("metadata.`key with space` = x").field == "metadata.key with space"


def test_mlflow_spellings_of_tags_are_accepted():
    assert parse("tags.env = prod").field == "tag.env"


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("state = ", 8, "expected a value after =, found the end of the query"),
        ("colour = red", 0, "unknown field 'colour'"),
        ("state = OK and", 14, "expected a filter, found the end of the query"),
        ("(state = OK", 11, "expected ) to close the ( at position 0"),
        ("state = OK)", 10, "unexpected ')'"),
        ('name = "open', 7, "unterminated string"),
        ("state in OK", 9, "expected ( after in"),
        ("state in (OK ERROR)", 13, "expected , or ) in the list"),
        ("state > OK", 6, "state does not take >"),
        ("state = BROKEN", 8, "unknown state 'BROKEN'"),
        ("duration > 2parsecs", 11, "expected a duration like 2s"),
        ("tokens > many", 9, "expected a whole number, found 'many'"),
        ("tokens > 99999999999999999999", 9, "too large"),
        ("cost > cheap", 7, "expected an amount of dollars like 0.01, found 'cheap'"),
        ("cost > -1", 7, "expected an amount of dollars"),
        ("time > yesterday", 7, "expected a time like -1h"),
        ("time > -3y", 7, "unknown time unit 'y'"),
        ("time = -1h", 5, "time does not take ="),
        ("state ! OK", 6, "'!' must be followed by '='"),
        ("tag. = x", 0, "tag.<key> needs a key"),
        ("or state = OK", 0, "expected a filter, found 'or'"),
        ("span.status = MAYBE", 14, "unknown span status 'MAYBE'"),
    ],
)
def test_invalid_queries_say_what_is_wrong_and_where(query, position, message):
    with pytest.raises(SearchError) as raised:
        compile_query(query)

    assert raised.value.position == position
    assert message in raised.value.message
    assert f"(at position {position})" in str(raised.value)


def test_deep_nesting_is_refused_not_a_crash():
    with pytest.raises(SearchError, match="too deeply nested"):
        parse("(" * 500 + "x" + ")" * 500)


def test_a_very_long_query_is_refused():
    with pytest.raises(SearchError, match="longer than"):
        parse("x " * 2_000)


@pytest.mark.parametrize(
    "query",
    [
        "state = ERROR and duration > 2s",
        "(state = OK or state = ERROR) and not tag.env = prod",
        'name ~ "hello world" or refund',
        "span.type in (LLM, TOOL) and metadata.`a b` != x",
        "not (tokens < 5 or tokens > 10)",
    ],
)
def test_unparse_reads_back_to_the_same_tree(query):
    node = parse(query)

    assert _strip_positions(parse(unparse(node))) == _strip_positions(node)


def _strip_positions(node):
    if isinstance(node, Comparison):
        return (node.field, node.op, node.values)
    if isinstance(node, Text):
        return ("text", node.value)
    if isinstance(node, Not):
        return ("not", _strip_positions(node.operand))
    return (type(node).__name__, tuple(_strip_positions(n) for n in node.operands))


def test_with_clause_replaces_the_fields_clause_and_keeps_the_rest():
    query = "state = OK and refund and time > -1h"

    assert with_clause(query, "state", "state = ERROR") == (
        "refund and time > -1h and state = ERROR"
    )
    assert with_clause(query, "state", "") == "refund and time > -1h"
    assert with_clause("", "time", "time > -15m") == "time > -15m"
    assert with_clause("state = OK or tokens > 3", "time", "time > -1h") == (
        "(state = OK or tokens > 3) and time > -1h"
    )
    assert with_clause("state = (", "state", "state = OK") == "state = OK"


def test_top_level_clauses_name_what_quick_filters_show_as_active():
    assert top_level_clauses("state = ERROR and x") == {("state", "state = ERROR")}
    assert top_level_clauses("state = ERROR or x") == set()


# --- Each field against the database ---------------------------------------------------------


def names(query: str, now: datetime | None = None) -> list[str]:
    rows = Trace.objects.filter(compile_query(query, now=now)).order_by("name")
    return list(rows.values_list("name", flat=True))


@pytest.mark.django_db
def test_state_matches_case_insensitively_and_in_lists(experiment):
    make_trace(experiment, 1, name="ok", state=TraceState.OK)
    make_trace(experiment, 2, name="err", state=TraceState.ERROR)
    make_trace(experiment, 3, name="open", state=TraceState.IN_PROGRESS)

    assert names("state = error") == ["err"]
    assert names("state != OK") == ["err", "open"]
    assert names("state in (ok, in_progress)") == ["ok", "open"]
    assert names("state not in (OK)") == ["err", "open"]


@pytest.mark.django_db
def test_state_cancelled_finds_stopped_answers_and_ok_leaves_them_out(experiment):
    make_trace(experiment, 1, name="ok", state=TraceState.OK)
    make_trace(experiment, 2, name="stopped", tags={CANCELLED_TAG: "true"})
    make_trace(experiment, 3, name="err", state=TraceState.ERROR)
    make_trace(experiment, 4, name="not really", tags={CANCELLED_TAG: "false"})

    assert names("state = CANCELLED") == ["stopped"]
    assert names("status = cancelled") == ["stopped"]  # MLflow's spelling, any case
    assert names("state = OK") == ["not really", "ok"]
    assert names("state != cancelled") == ["err", "not really", "ok"]
    assert names("state in (ok, cancelled)") == ["not really", "ok", "stopped"]
    assert names("state in (error, cancelled)") == ["err", "stopped"]
    assert names("state not in (OK)") == ["err", "stopped"]


def test_an_unknown_state_names_the_states_cancelled_included():
    with pytest.raises(SearchError, match="CANCELLED") as error:
        compile_query("state = stopped")

    assert error.value.position == 8


@pytest.mark.django_db
def test_state_cancelled_is_served_by_its_partial_index(experiment):
    # A few cancelled answers among many OK traces: walking every OK trace's tags to find
    # them would read the whole table of a big one.
    Trace.objects.bulk_create(
        Trace(
            trace_id=f"tr-{n:032x}",
            experiment=experiment,
            state=TraceState.OK,
            request_time=T0 + timedelta(seconds=n),
            tags={CANCELLED_TAG: "true"} if n % 500 == 0 else {},
        )
        for n in range(2000)
    )
    query = Trace.objects.for_list().filter(compile_query("state = CANCELLED"))[:51]
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        explain = "EXPLAIN "
        if connection.vendor == "sqlite":
            # SQLite picks it on bigger tables only, and only when the query repeats the
            # index's condition term for term: forced, it fails with "no query solution".
            index = ' FROM "tracking_trace" INDEXED BY trace_cancelled_time_idx'
            sql, explain = sql.replace(' FROM "tracking_trace"', index, 1), "EXPLAIN QUERY PLAN "
        cursor.execute(explain + sql, params)
        plan = str(cursor.fetchall())

    assert "trace_cancelled_time_idx" in plan
    assert [t.trace_id for t in query] == [f"tr-{n:032x}" for n in (1500, 1000, 500, 0)]


@pytest.mark.django_db
def test_name_matches_exactly_or_contains(experiment):
    make_trace(experiment, 1, name="answer_question")
    make_trace(experiment, 2, name="triage")

    assert names("name = triage") == ["triage"]
    assert names("name ~ QUEST") == ["answer_question"]
    assert names("name != triage") == ["answer_question"]


@pytest.mark.django_db
def test_duration_compares_with_units(experiment):
    make_trace(experiment, 1, name="fast", duration_ns=150_000_000)
    make_trace(experiment, 2, name="slow", duration_ns=3_000_000_000)
    make_trace(experiment, 3, name="open", duration_ns=None, state=TraceState.IN_PROGRESS)

    assert names("duration > 2s") == ["slow"]
    assert names("duration <= 150ms") == ["fast"]
    assert names("duration >= 0.05m") == ["slow"]
    assert names("duration < 200") == ["fast"]  # a bare number is milliseconds, as in MLflow
    assert names("duration = 150000us") == ["fast"]
    assert names("not duration > 2s") == ["fast", "open"]


@pytest.mark.django_db
def test_time_takes_relative_and_absolute_times(experiment):
    now = T0 + timedelta(hours=2)
    make_trace(experiment, 1, name="two hours ago", request_time=T0)
    make_trace(experiment, 2, name="ten minutes ago", request_time=now - timedelta(minutes=10))

    assert names("time > -1h", now=now) == ["ten minutes ago"]
    assert names("time < -30m", now=now) == ["two hours ago"]
    assert names("time >= 2025-06-01T13:00") == ["ten minutes ago"]
    assert names('time < "2025-06-01 13:00:00+00:00"') == ["two hours ago"]
    assert names("time >= 2025-06-01 and time < 2025-06-02") == [
        "ten minutes ago",
        "two hours ago",
    ]
    assert names("time <= now", now=now) == ["ten minutes ago", "two hours ago"]


@pytest.mark.django_db
def test_tokens_compare_as_numbers(experiment):
    make_trace(experiment, 1, name="small", total_tokens=90)
    make_trace(experiment, 2, name="big", total_tokens=1_500)
    make_trace(experiment, 3, name="unknown", total_tokens=None)

    assert names("tokens > 100") == ["big"]
    assert names("tokens <= 1_500") == ["big", "small"]
    assert names("tokens != 90") == ["big", "unknown"]


@pytest.mark.django_db
def test_cost_compares_dollars_and_an_unknown_cost_is_not_zero(experiment):
    make_trace(experiment, 1, name="cheap", cost=0.0004)
    make_trace(experiment, 2, name="dear", cost=0.25)
    make_trace(experiment, 3, name="unpriced", cost=None)

    assert names("cost > 0.01") == ["dear"]
    assert names("cost <= $0.25") == ["cheap", "dear"]
    assert names("cost < .001") == ["cheap"]
    assert names("cost >= 0") == ["cheap", "dear"]


@pytest.mark.django_db
def test_model_matches_a_version_id_or_a_model_name(experiment):
    v1 = make_model(experiment, name="support-agent")
    other = make_model(experiment, name="billing-agent")
    make_trace(experiment, 1, name="support", model_id=v1.model_id)
    make_trace(experiment, 2, name="billing", model_id=other.model_id)
    make_trace(experiment, 3, name="none")

    assert names(f"model = {v1.model_id}") == ["support"]
    assert names("model = support-agent") == ["support"]
    assert names("model ~ billing") == ["billing"]
    assert names("model != support-agent") == ["billing", "none"]
    assert names("model in (support-agent, billing-agent)") == ["billing", "support"]


@pytest.mark.django_db
def test_model_matches_a_registered_model_its_aliases_and_its_version_numbers(experiment):
    # Seed 004: every version is logged as "agent" and registered as support_chat_agent.
    v1, v2 = make_model(experiment, name="agent"), make_model(experiment, name="agent")
    unregistered = make_model(experiment, name="agent")
    registered = RegisteredModel.objects.create(
        name="support_chat_agent", aliases={"champion": 2, "baseline": 1}
    )
    for number, model in enumerate([v1, v2], start=1):
        ModelVersion.objects.create(
            registered_model=registered, version=number, model_id=model.model_id
        )
    ModelVersion.objects.create(registered_model=registered, version=3, model_id="")
    make_trace(experiment, 1, name="first", model_id=v1.model_id)
    make_trace(experiment, 2, name="second", model_id=v2.model_id)
    make_trace(experiment, 3, name="unregistered", model_id=unregistered.model_id)
    make_trace(experiment, 4, name="none")

    assert names("model = support_chat_agent") == ["first", "second"]
    assert names("model = support_chat_agent@champion") == ["second"]
    assert names('model = "models:/support_chat_agent@baseline"') == ["first"]
    assert names("model = support_chat_agent/1") == ["first"]
    assert names("model = support_chat_agent@nobody") == []
    assert names("model != support_chat_agent@champion") == ["first", "none", "unregistered"]
    assert names("model in (support_chat_agent@champion, support_chat_agent/1)") == [
        "first",
        "second",
    ]
    assert names("model ~ chat_agent") == ["first", "second"]
    assert names("model = agent") == ["first", "second", "unregistered"]  # the logged name


@pytest.mark.django_db
def test_tags_and_metadata_compare_the_text_of_one_key(experiment):
    make_trace(experiment, 1, name="prod", tags={"env": "prod", "a.b": "dotted"})
    make_trace(experiment, 2, name="dev", tags={"env": "dev"}, metadata={"mlflow.user": "bob"})
    make_trace(experiment, 3, name="untagged")

    assert names("tag.env = prod") == ["prod"]
    assert names("tag.a.b = dotted") == ["prod"]
    assert names("tag.env ~ PRO") == ["prod"]
    assert names("tag.env in (dev, qa)") == ["dev"]
    # `!=` needs the key; `not ... =` is true for a trace without it.
    assert names("tag.env != prod") == ["dev"]
    assert names("not tag.env = prod") == ["dev", "untagged"]
    assert names("metadata.mlflow.user = bob") == ["dev"]


@pytest.mark.django_db
def test_span_fields_match_traces_having_such_a_span(experiment):
    a = make_trace(experiment, 1, name="a")
    b = make_trace(experiment, 2, name="b")
    make_trace(experiment, 3, name="no spans")
    make_span(a, "a1", 0, name="search_orders", span_type="TOOL", status="ERROR")
    make_span(a, "a2", 1, name="chat", span_type="LLM", attributes={"llm.model": "gpt-4o"})
    make_span(
        b, "b1", 0, name="chat", span_type="LLM", attributes={"llm.model": "claude", "tokens": 120}
    )

    assert names("span.name = search_orders") == ["a"]
    assert names("span.name ~ SEARCH") == ["a"]
    assert names("span.type = llm") == ["a", "b"]
    assert names("span.type in (TOOL)") == ["a"]
    assert names("span.status = error") == ["a"]
    assert names("span.attributes.llm.model = claude") == ["b"]
    assert names("span.attributes.llm.model ~ gpt") == ["a"]
    assert names("span.attributes.llm.model in (claude, x)") == ["b"]
    assert names("span.attributes.tokens = 120") == ["b"]  # a JSON number, compared as text
    # `!=` is "no span has it": a trace without spans qualifies.
    assert names("span.name != search_orders") == ["b", "no spans"]
    assert names("span.type not in (LLM)") == ["no spans"]


@pytest.mark.django_db
def test_free_text_searches_both_previews_case_insensitively(experiment):
    make_trace(experiment, 1, name="asks", request_preview='{"q": "Where is my REFUND?"}')
    make_trace(experiment, 2, name="answers", request_preview="", response_preview="Refund sent")
    make_trace(experiment, 3, name="other", request_preview="hello", response_preview="hi")

    assert names("refund") == ["answers", "asks"]
    assert names('"my refund"') == ["asks"]
    assert names("not refund") == ["other"]
    assert names("hi") == ["other"]  # shorter than a trigram: still found
    assert names('"50% off_"') == []  # LIKE wildcards are literal


@pytest.mark.django_db
def test_free_text_follows_preview_updates_and_deletes(experiment):
    # On SQLite the search reads an FTS table that triggers keep in sync.
    trace = make_trace(experiment, 1, name="t", request_preview="first words")
    assert names("first") == ["t"]

    trace.request_preview = "second thoughts"
    trace.save(update_fields=["request_preview"])
    assert names("first") == []
    assert names("second") == ["t"]

    trace.delete()
    assert names("second") == []


@pytest.mark.django_db
def test_or_has_lower_precedence_than_and_in_results(experiment):
    make_trace(experiment, 1, name="err slow", state="ERROR", duration_ns=5_000_000_000)
    make_trace(experiment, 2, name="err fast", state="ERROR", duration_ns=1_000_000)
    make_trace(experiment, 3, name="ok slow", state="OK", duration_ns=5_000_000_000)
    make_trace(experiment, 4, name="ok fast", state="OK", duration_ns=1_000_000)

    # state = OK or (state = ERROR and duration > 2s)
    assert names("state = OK or state = ERROR and duration > 2s") == [
        "err slow",
        "ok fast",
        "ok slow",
    ]
    assert names("(state = OK or state = ERROR) and duration > 2s") == ["err slow", "ok slow"]
    assert names("not (state = OK or duration > 2s)") == ["err fast"]


@pytest.mark.django_db
def test_search_terms_are_parameters_not_sql(experiment):
    make_trace(experiment, 1, name="x'); DROP TABLE tracking_trace; --")

    assert names('name = "x\'); DROP TABLE tracking_trace; --"') == [
        "x'); DROP TABLE tracking_trace; --"
    ]
    assert names('"\'; DROP TABLE tracking_trace; --" or "NEAR(a b)" or "a OR b*"') == []
    assert Trace.objects.count() == 1


@pytest.mark.django_db
def test_rare_words_use_the_fts_index_on_sqlite_and_common_ones_a_like_walk(
    experiment, monkeypatch
):
    monkeypatch.setattr(search, "FTS_COMMON", 3)
    for n in range(3):
        make_trace(experiment, n, request_preview="a common word", response_preview="")
    make_trace(experiment, 9, request_preview="a rare word", response_preview="")

    rare = str(Trace.objects.filter(compile_query("rare")).query)
    common = str(Trace.objects.filter(compile_query("common")).query)

    if connection.vendor == "sqlite":
        assert "tracking_trace_fts MATCH" in rare
    else:
        assert "LIKE" in rare
    assert "LIKE" in common and "MATCH" not in common
    assert len(names("common")) == 3
    assert len(names("rare")) == 1


def test_relative_times_are_counted_from_now():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    q = compile_query("time > -2d", now=now)

    assert q.children == [("request_time__gt", now - timedelta(days=2))]


def test_a_nul_character_is_refused_with_its_position():
    with pytest.raises(SearchError) as raised:
        parse("name = a\x00b")

    assert raised.value.position == 8
