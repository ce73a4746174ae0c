"""The trace page's "Compare with…" list of the same input on other versions
(tracking/same_input.py, GET /traces/<id>/same-input/)."""

from __future__ import annotations

import pytest

from access.models import ExperimentGrant, Level
from tests.rows import make_model, make_span, make_trace
from tests.xss import CORPUS, injected_markup
from tracking import evaluations, same_input
from tracking.datasets import EvaluationDataset
from tracking.ingest import PREVIEW_MAX_CHARS
from tracking.models import Experiment, Run

pytestmark = pytest.mark.django_db

Q1, Q2 = '{"question": "When does order 42 ship?"}', '{"question": "Refund?"}'


def listed(client, trace, **headers) -> list[str]:
    response = client.get(f"/traces/{trace.trace_id}/same-input/", headers=headers)
    assert response.status_code == 200, response.content[:300]
    return [other.trace.trace_id for other in response.context["found"].others]


def evaluation(experiment, dataset, model, traces) -> Run:
    """An evaluation run of `model` on `dataset` with `traces` as its rows, as the mlflow
    client leaves it (run type tag, LogInputs, linked traces)."""
    run = Run.objects.create(
        experiment=experiment, tags={evaluations.RUN_TYPE_TAG: evaluations.GENAI_EVALUATE}
    )
    run.log_inputs([evaluations.dataset_input(dataset)], [model.model_id])
    run.linked_traces.add(*traces)
    return run


def test_evaluation_rows_of_another_version_on_the_dataset_are_found(client, experiment):
    dataset = EvaluationDataset.objects.create(name="orders", digest="d1")
    other_dataset = EvaluationDataset.objects.create(name="refunds", digest="d2")
    v1, v2, v3 = (make_model(experiment, f"agent-v{i}") for i in (1, 2, 3))
    mine = make_trace(experiment, 1, request_preview=Q1, model_id=v1.model_id)
    evaluation(experiment, dataset, v1, [mine, make_trace(experiment, 2, request_preview=Q2)])
    theirs = make_trace(experiment, 3, request_preview=Q1, model_id=v2.model_id)
    other_question = make_trace(experiment, 4, request_preview=Q2, model_id=v2.model_id)
    evaluation(experiment, dataset, v2, [theirs, other_question])
    # The same question in an evaluation on another dataset, and asked outside evaluations.
    elsewhere = make_trace(experiment, 5, request_preview=Q1, model_id=v3.model_id)
    evaluation(experiment, other_dataset, v3, [elsewhere])
    make_trace(experiment, 6, request_preview=Q1, model_id=v3.model_id)

    response = client.get(f"/traces/{mine.trace_id}/same-input/")

    assert [o.trace.trace_id for o in response.context["found"].others] == [theirs.trace_id]
    html = response.content.decode()
    assert f'href="/traces/diff/?a={mine.trace_id}&amp;b={theirs.trace_id}"' in html
    assert "agent-v2" in html and "the other evaluations on this dataset" in html


def test_an_evaluation_row_without_a_match_falls_back_to_the_experiments_traces(client, experiment):
    dataset = EvaluationDataset.objects.create(name="orders", digest="d1")
    v1, v2 = make_model(experiment, "v1"), make_model(experiment, "v2")
    mine = make_trace(experiment, 1, request_preview=Q1, model_id=v1.model_id)
    evaluation(experiment, dataset, v1, [mine])
    played = make_trace(experiment, 2, request_preview=Q1, model_id=v2.model_id)

    assert listed(client, mine) == [played.trace_id]


def test_traces_of_the_same_preview_on_other_versions_are_found_newest_first(client, experiment):
    v1, v2, v3 = (make_model(experiment, f"v{i}") for i in (1, 2, 3))
    mine = make_trace(experiment, 1, request_preview=Q1, model_id=v1.model_id)
    older = make_trace(experiment, 2, request_preview=Q1, model_id=v2.model_id)
    unversioned = make_trace(experiment, 3, request_preview=Q1)
    newer = make_trace(experiment, 4, request_preview=Q1, model_id=v3.model_id)
    make_trace(experiment, 5, request_preview=Q1, model_id=v1.model_id)  # the same version
    make_trace(experiment, 6, request_preview=Q2, model_id=v2.model_id)  # another question
    elsewhere = Experiment.objects.create(name="elsewhere")
    make_trace(elsewhere, 7, request_preview=Q1, model_id=v2.model_id)

    assert listed(client, mine) == [newer.trace_id, unversioned.trace_id, older.trace_id]


def test_at_most_ten_are_listed(client, experiment):
    mine = make_trace(experiment, 0, request_preview=Q1, model_id="m-1")
    for n in range(1, 13):
        make_trace(experiment, n, request_preview=Q1, model_id="m-2")

    assert len(listed(client, mine)) == same_input.LIMIT == 10


def test_only_the_experiments_last_traces_are_searched_and_the_panel_says_so(
    client, experiment, monkeypatch
):
    monkeypatch.setattr(same_input, "RECENT", 3)
    out_of_reach = make_trace(experiment, 1, request_preview=Q1, model_id="m-2")
    mine = make_trace(experiment, 2, request_preview=Q1, model_id="m-1")
    within = make_trace(experiment, 3, request_preview=Q1, model_id="m-3")
    make_trace(experiment, 4, request_preview=Q2)

    response = client.get(f"/traces/{mine.trace_id}/same-input/")

    assert [o.trace.trace_id for o in response.context["found"].others] == [within.trace_id]
    assert out_of_reach.trace_id not in response.content.decode()
    assert "Searched the last 3 traces of this experiment." in response.content.decode()


def test_a_cut_preview_is_confirmed_by_the_root_inputs(client, experiment):
    """Previews at the length cap are equal for any inputs that share a long beginning (a long
    system prompt): those are told apart by their root spans' inputs."""
    prompt = "You are a support agent. " * 60
    cut = ('{"messages": [{"role": "system", "content": "' + prompt)[:PREVIEW_MAX_CHARS]
    traces = [make_trace(experiment, n, request_preview=cut, model_id=f"m-{n}") for n in (1, 2, 3)]
    for trace, question in zip(traces, ("Refund?", "Refund?", "Ship?"), strict=True):
        inputs = {"messages": [{"role": "system", "content": prompt}, {"content": question}]}
        make_span(trace, "r", 1, inputs=inputs)

    assert listed(client, traces[0]) == [traces[1].trace_id]


def test_evaluations_and_traces_the_user_may_not_read_are_left_out(
    client, auth_on, charlie, experiment
):
    ExperimentGrant.objects.create(experiment=experiment, level=Level.READ)
    private = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=private, level=Level.NONE)
    dataset = EvaluationDataset.objects.create(name="orders", digest="d1")
    v1, v2 = make_model(experiment, "v1"), make_model(private, "secret version")
    mine = make_trace(experiment, 1, request_preview=Q1, model_id=v1.model_id)
    evaluation(experiment, dataset, v1, [mine])
    hidden = make_trace(private, 2, request_preview=Q1, model_id=v2.model_id)
    evaluation(private, dataset, v2, [hidden])
    client.force_login(charlie)

    response = client.get(f"/traces/{mine.trace_id}/same-input/")

    assert response.context["found"].others == []
    assert hidden.trace_id not in response.content.decode()
    assert "secret version" not in response.content.decode()
    assert client.get(f"/traces/{hidden.trace_id}/same-input/").status_code == 404


def test_the_query_count_does_not_grow_with_the_matches(
    client, experiment, django_assert_max_num_queries
):
    dataset = EvaluationDataset.objects.create(name="orders", digest="d1")
    models = [make_model(experiment, f"v{i}") for i in range(8)]
    mine = make_trace(experiment, 0, request_preview=Q1, model_id=models[0].model_id)
    evaluation(experiment, dataset, models[0], [mine])
    for i, model in enumerate(models[1:], start=1):
        rows = [make_trace(experiment, i * 10 + n, request_preview=q, model_id=model.model_id)
                for n, q in enumerate((Q1, Q2, Q1))]  # fmt: skip
        evaluation(experiment, dataset, model, rows)

    # The trace, its evaluations, their datasets, the matches, the version names.
    with django_assert_max_num_queries(5):
        assert len(listed(client, mine)) == 10


def test_version_names_holding_the_xss_corpus_are_text(client, experiment):
    mine = make_trace(experiment, 0, request_preview=Q1, model_id="m-0")
    for n, name in enumerate(CORPUS, start=1):
        model = make_model(experiment, name)
        make_trace(experiment, n, request_preview=Q1, model_id=model.model_id)

    response = client.get(f"/traces/{mine.trace_id}/same-input/", headers={"HX-Request": "true"})

    html = response.content.decode()
    assert injected_markup(html) == []
    assert "&lt;script&gt;alert(&#x27;script&#x27;)&lt;/script&gt;" in html


def test_htmx_gets_the_fragment_and_the_trace_page_asks_for_it_when_opened(client, experiment):
    mine = make_trace(experiment, 0, request_preview=Q1)

    fragment = client.get(f"/traces/{mine.trace_id}/same-input/", headers={"HX-Request": "true"})
    page = client.get(f"/traces/{mine.trace_id}/")

    assert b"<html" not in fragment.content and b"data-same-input-none" in fragment.content
    assert fragment["Vary"] == "HX-Request"
    html = page.content.decode()
    assert f'hx-get="/traces/{mine.trace_id}/same-input/" hx-trigger="toggle once"' in html


def test_a_trace_without_input_searches_nothing(client, experiment):
    mine = make_trace(experiment, 0, request_preview="")
    make_trace(experiment, 1, request_preview="", model_id="m-1")

    assert listed(client, mine) == []
