"""Registered scorers through the real mlflow client: a `@scorer` function and a built-in judge
registered (twice, for versions), listed, fetched by version, given an online sampling
configuration (start, update, stop) and deleted, with the rows the server stored."""

from __future__ import annotations

import json

from tests.rows import XSS
from tracking.models import OnlineConfig, Scorer, ScorerVersion

FLOW_SCRIPT = """
    from mlflow.exceptions import MlflowException
    from mlflow.genai.scorers import (
        Guidelines, ScorerSamplingConfig, delete_scorer, get_scorer, list_scorers, scorer,
    )
    from mlflow.genai.scorers.registry import list_scorer_versions

    XSS_NAME = "XSS_TEXT"
    mlflow.set_experiment("scorers")

    @scorer
    def short(outputs):
        return len(str(outputs)) < 8

    short.register(name="short")
    registered = short.register(name="short")  # version 2
    polite = Guidelines(name="polite", guidelines=["Be polite."]).register(name=XSS_NAME)
    result({
        "listed": sorted([s.name, type(s).__name__] for s in list_scorers()),
        "versions": [v for _, v in list_scorer_versions(name="short")],
        "v1": get_scorer(name="short", version=1).name,
        "latest_runs": get_scorer(name="short")(outputs="tiny"),
        "guidelines": get_scorer(name=XSS_NAME).guidelines,
    })

    started = polite.start(sampling_config=ScorerSamplingConfig(sample_rate=0.5))
    updated = started.update(
        sampling_config=ScorerSamplingConfig(sample_rate=0.25, filter_string="trace.status = 'OK'")
    )
    seen = get_scorer(name=XSS_NAME)
    stopped = updated.stop()
    result({
        "started": started.sample_rate,
        "updated": [updated.sample_rate, updated.filter_string],
        "seen": [seen.sample_rate, seen.filter_string],
        "stopped": stopped.sample_rate,
        "registered_sample_rate": registered.sample_rate,
    })

    delete_scorer(name="short", version=1)
    after_one = [v for _, v in list_scorer_versions(name="short")]
    delete_scorer(name="short", version="all")
    try:
        get_scorer(name="short")
    except MlflowException as error:
        result([after_one, error.error_code])
    result(sorted(s.name for s in list_scorers()))
"""


def test_scorer_flow(run_mlflow):
    # The client itself refuses to rebuild a `@scorer` function it reads back (its source is
    # exec'd) unless this is set in *its* environment; the server stores it either way.
    script = FLOW_SCRIPT.replace("XSS_TEXT", XSS)
    found = run_mlflow(script, MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS="true")
    registered, online, deleted, remaining = found
    assert registered == {
        "listed": sorted([[XSS, "Guidelines"], ["short", "CustomScorer"]]),
        "versions": [1, 2],
        "v1": "short",
        "latest_runs": True,  # the client runs its own copy; the server never does
        "guidelines": ["Be polite."],
    }
    assert online == {
        "started": 0.5,
        "updated": [0.25, "trace.status = 'OK'"],
        "seen": [0.25, "trace.status = 'OK'"],
        "stopped": 0.0,
        "registered_sample_rate": None,
    }
    assert deleted == [[2], "RESOURCE_DOES_NOT_EXIST"]
    assert remaining == [XSS]

    judge = Scorer.objects.get(name=XSS)
    stored = json.loads(ScorerVersion.objects.get(scorer=judge).serialized_scorer)
    assert stored["name"] == XSS
    assert OnlineConfig.objects.get(scorer=judge).sample_rate == 0.0
    assert not Scorer.objects.filter(name="short").exists()
