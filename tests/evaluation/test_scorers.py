"""The built-in code scorers (pass, fail, missing data) and their configuration's errors.
Pure: no database, no server."""

from __future__ import annotations

import pytest

from evaluation.scorers import Row, Score, ScorerSpec, SpecError, build


def scorer(kind: str, **config):
    return build(ScorerSpec.from_config({"kind": kind, "name": kind, "config": config}))


def score(kind: str, row: Row, **config) -> Score:
    return scorer(kind, **config).score(row)


# --- Specs --------------------------------------------------------------------------------------


def test_a_spec_names_its_scorer_after_its_kind_by_default():
    spec = ScorerSpec.from_config({"kind": "latency", "config": {"max_ms": 500}})
    assert (spec.kind, spec.name) == ("latency", "latency")
    assert ScorerSpec.from_config(spec.as_config()) == spec


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("exact_match", "JSON object"),
        ({"kind": "fuzzy"}, "Unknown scorer kind 'fuzzy'"),
        ({}, "Unknown scorer kind (none)"),
        ({"kind": "latency", "name": "a/mean", "config": {"max_ms": 1}}, "Scorer name"),
        ({"kind": "latency", "config": []}, "must be a JSON object"),
        ({"kind": "latency", "config": {}}, "max_ms is required"),
        ({"kind": "latency", "config": {"max_ms": -1}}, "at least 0"),
        ({"kind": "latency", "config": {"max_ms": "fast"}}, "must be a number"),
        ({"kind": "latency", "config": {"max_ms": float("nan")}}, "finite"),
        ({"kind": "tokens", "config": {"max_tokens": True}}, "max_tokens is required"),
        ({"kind": "latency", "config": {"max_ms": 5, "max_mz": 1}}, "unknown option max_mz"),
        ({"kind": "exact_match", "config": {"trim": "maybe"}}, "trim must be true or false"),
        ({"kind": "regex", "config": {"pattern": "("}}, "not a valid regular expression"),
        ({"kind": "regex", "config": {}}, "give pattern, or the expectation"),
        ({"kind": "contains", "config": {"text": "a", "expectation": "b"}}, "not both"),
        ({"kind": "json", "config": {"schema": "{"}}, "schema is not JSON"),
        ({"kind": "json", "config": {"schema": {"type": "strange"}}}, "not a valid JSON Schema"),
        ({"kind": "custom_output", "config": {"path": "a"}}, "either expected"),
        ({"kind": "custom_output", "config": {"path": "a..b", "present": True}}, "empty part"),
        ({"kind": "custom_output", "config": {"path": "a", "present": True, "expected": 1}},
         "either expected"),
    ],
)  # fmt: skip
def test_a_bad_spec_says_what_to_fix(data, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ScorerSpec.from_config(data)


def test_form_values_are_read_as_a_form_sends_them():
    exact = scorer("exact_match", trim="on", case_insensitive="on")
    assert exact.score(Row(outputs="  PARIS ", expectations={"expected_response": "paris"})).value
    assert scorer("latency", max_ms="250").limit == 250


# --- Exact match --------------------------------------------------------------------------------


def test_exact_match_passes_an_equal_answer_trimmed():
    row = Row(outputs="Paris\n", expectations={"expected_response": "Paris"})
    result = score("exact_match", row)
    assert result == Score(True, "The answer equals expected_response.")


def test_exact_match_fails_another_answer_and_says_both():
    row = Row(outputs="paris", expectations={"expected_response": "Paris"})
    result = score("exact_match", row)
    assert result.value is False
    assert "'paris'" in result.rationale and "'Paris'" in result.rationale


def test_exact_match_can_ignore_case_and_keep_spaces():
    row = Row(outputs="paris", expectations={"expected_response": "Paris"})
    assert score("exact_match", row, case_insensitive=True).value is True
    spaced = Row(outputs=" Paris", expectations={"expected_response": "Paris"})
    assert score("exact_match", spaced, trim=False).value is False


def test_exact_match_without_the_expectation_is_an_error_not_a_failure():
    result = score("exact_match", Row(outputs="Paris", expectations={"other": "Paris"}))
    assert result.value is None
    assert result.error == "The row has no expectation 'expected_response'."


def test_exact_match_reads_another_key_and_structured_answers():
    row = Row(outputs={"content": "42"}, expectations={"answer": 42})
    assert score("exact_match", row, expectation="answer").value is True


# --- Contains and regex -------------------------------------------------------------------------


def test_contains_a_configured_text():
    row = Row(outputs="The capital is Paris.")
    assert score("contains", row, text="Paris").value is True
    assert score("contains", row, text="paris").value is False
    assert score("contains", row, text="paris", case_insensitive=True).value is True


def test_contains_an_expectation_and_an_error_without_it():
    row = Row(outputs="The capital is Paris.", expectations={"must": "capital"})
    assert score("contains", row, expectation="must").value is True
    assert score("contains", Row(outputs="x"), expectation="must").error


def test_regex_from_config_searches_or_matches_fully():
    row = Row(outputs="Order #12345 shipped")
    assert score("regex", row, pattern=r"#\d{5}").value is True
    assert score("regex", row, pattern=r"#\d{5}", full_match=True).value is False
    result = score("regex", row, pattern=r"refund")
    assert result.value is False and "does not match /refund/" in result.rationale


def test_regex_from_an_expectation_and_a_bad_one_is_an_error():
    regex = scorer("regex", expectation="pattern", case_insensitive=True)
    assert regex.score(Row(outputs="YES", expectations={"pattern": "^yes$"})).value is True
    bad = regex.score(Row(outputs="yes", expectations={"pattern": "(unclosed"}))
    assert bad.value is None and "is not a regex" in bad.error
    assert regex.score(Row(outputs="yes")).error == "The row has no expectation 'pattern'."


# --- JSON ---------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city"],
}


def test_json_passes_json_and_fails_prose():
    assert score("json", Row(outputs='{"a": [1, 2]}')).value is True
    result = score("json", Row(outputs="Sure! Here it is: {"))
    assert result.value is False and result.rationale.startswith("The answer is not JSON")


def test_json_schema_passes_a_valid_answer_and_says_where_an_invalid_one_fails():
    assert score("json", Row(outputs='{"city": "Paris"}'), schema=SCHEMA).value is True
    result = score("json", Row(outputs='{"city": "Paris", "population": "many"}'), schema=SCHEMA)
    assert result.value is False
    assert result.rationale.startswith("Invalid at population: 'many' is not of type 'integer'")
    missing = score("json", Row(outputs="{}"), schema=SCHEMA)
    assert missing.value is False and "'city' is a required property" in missing.rationale


def test_json_schema_from_a_form_and_a_structured_answer():
    json_scorer = scorer("json", schema='{"type": "array"}')
    assert json_scorer.score(Row(outputs=[1, 2])).value is True
    assert json_scorer.score(Row(outputs={"a": 1})).value is False


def test_json_schema_refuses_a_remote_ref_and_never_fetches_one():
    # jsonschema's default registry would fetch it with urlopen, past webapp.egress.
    with pytest.raises(SpecError, match="only local"):
        scorer("json", schema={"properties": {"a": {"$ref": "https://example.invalid/s.json"}}})
    local = scorer("json", schema={"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"})
    assert local.score(Row(outputs="3")).value is True
    # A ref to an id that is not there: an error, with no request made.
    dangling = scorer("json", schema={"$ref": "#/$defs/missing"})
    result = dangling.score(Row(outputs="{}"))
    assert result.value is None and "could not be checked" in result.error


def test_json_nested_too_deep_is_a_failure_not_a_crash():
    result = score("json", Row(outputs="[" * 100_000 + "]" * 100_000))
    assert result.value is False


# --- custom_outputs -----------------------------------------------------------------------------


def test_custom_output_present_by_path():
    row = Row(custom_outputs={"sources": [{"url": "https://a.example"}]})
    assert score("custom_output", row, path="sources.0.url", present=True).value is True
    result = score("custom_output", row, path="sources.1.url", present=True)
    assert result == Score(False, "custom_outputs has no sources.1.url.")


def test_custom_output_equals_an_expected_value_of_the_same_type():
    row = Row(custom_outputs={"route": "billing", "retries": 1, "ok": True})
    assert score("custom_output", row, path="route", expected="billing").value is True
    assert score("custom_output", row, path="retries", expected=1).value is True
    assert score("custom_output", row, path="ok", expected=1).value is False  # True is not 1
    result = score("custom_output", row, path="route", expected="sales")
    assert result.value is False and "'\"billing\"'" in result.rationale


def test_custom_output_of_an_agent_that_sent_none_fails():
    result = score("custom_output", Row(custom_outputs=None), path="route", present=True)
    assert result == Score(False, "The agent returned no custom_outputs.")


# --- Limits -------------------------------------------------------------------------------------


def test_latency_at_most_the_limit_passes():
    assert score("latency", Row(latency_ms=500), max_ms=500) == Score(True, "500 ms <= 500 ms.")
    assert score("latency", Row(latency_ms=501), max_ms=500) == Score(False, "501 ms > 500 ms.")
    assert score("latency", Row(), max_ms=500).error == "The row has no latency."


def test_tokens_under_a_limit():
    assert score("tokens", Row(tokens=90), max_tokens=100).value is True
    assert score("tokens", Row(tokens=120), max_tokens=100).value is False
    assert score("tokens", Row(), max_tokens=100).error == "The agent reported no token usage."


def test_cost_under_a_limit_and_a_missing_cost_is_an_error_never_zero():
    assert score("cost", Row(cost=0.0004), max_cost=0.001) == Score(True, "$0.0004 <= $0.001.")
    assert score("cost", Row(cost=0.002), max_cost=0.001).value is False
    result = score("cost", Row(cost=None), max_cost=0.001)
    assert result.value is None and result.error.startswith("No cost: the model is not priced")


# --- Sizes --------------------------------------------------------------------------------------


def test_rationales_stay_short_whatever_the_answer():
    huge = "x" * 1_000_000
    for kind, config in [
        ("exact_match", {}),
        ("contains", {"text": "y" * 5000}),
        ("regex", {"pattern": "y"}),
        ("json", {}),
        ("json", {"schema": {"type": "object", "properties": {"a": {"const": huge}}}}),
    ]:
        result = score(kind, Row(outputs=huge, expectations={"expected_response": huge}), **config)
        assert len(result.rationale or "") <= 501 and len(result.error or "") <= 501
