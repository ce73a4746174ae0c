"""MLflow's filter language (tracking/filters.py), pure: no database. The MLflow API's answer
to a bad filter (400 INVALID_PARAMETER_VALUE) is tested in test_mlflow_api.py, the model
list's in test_model_pages.py."""

from __future__ import annotations

import pytest

from tracking import filters
from tracking.filters import FilterError

# --- Parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name='x'", [("attribute", "name", "=", "x")]),
        ("name = 'x'", [("attribute", "name", "=", "x")]),
        ("request_metadata.`mlflow.modelId` = 'm-1'", [("metadata", "mlflow.modelId", "=", "m-1")]),
        ("tags.`mlflow.traceName` = 'a' AND trace.status = 'OK'",
         [("tag", "mlflow.traceName", "=", "a"), ("attribute", "status", "=", "OK")]),
        ("metrics.m > 0.5 and params.p1 != '1'",
         [("metric", "m", ">", 0.5), ("param", "p1", "!=", "1")]),
        ("attributes.status IN ('FINISHED', 'FAILED')",
         [("attribute", "status", "IN", ("FINISHED", "FAILED"))]),
        ('tags."a b" LIKE \'it\'\'s%\'', [("tag", "a b", "LIKE", "it's%")]),
        ("", []),
    ],
)  # fmt: skip
def test_filter_strings_parse_into_comparisons(text, expected):
    assert [(c.prefix, c.key, c.op, c.value) for c in filters.parse(text)] == expected


@pytest.mark.parametrize(
    "text",
    ["name =", "name 'x'", "name = 'x' OR name = 'y'", "name = 'x' name = 'y'", "bogus.k = '1'",
     "name = 'unterminated", "name IN 'x'", "(name = 'x')"],
)  # fmt: skip
def test_bad_filter_strings_are_refused_with_a_message(text):
    with pytest.raises(FilterError) as raised:
        filters.parse(text)

    assert raised.value.message.startswith(("Invalid filter", "The filter"))


def test_unknown_attributes_are_refused_per_entity():
    with pytest.raises(FilterError, match="no attribute 'colour'"):
        filters.TRACES.q("colour = 'red'")
    with pytest.raises(FilterError, match="cannot be filtered on params"):
        filters.TRACES.q("params.p = '1'")


@pytest.mark.parametrize("text", ["model > 'a'", "model <= 'a'"])
def test_model_of_logged_models_refuses_ordering_comparators(text):
    with pytest.raises(FilterError, match="model takes"):
        filters.LOGGED_MODELS.q(text)
