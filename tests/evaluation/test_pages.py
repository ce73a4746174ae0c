"""The evaluation pages over MLflow-shaped evaluation runs stored in the database (as
bench/evaluation_pages.py fills them): the list, one run, compared runs; their filters,
sorts, query counts, access and escaping."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from access.models import ExperimentGrant, Level
from bench.evaluation_pages import fill
from tests.xss import CORPUS, injected_markup
from tracking.models import Assessment, Experiment, Run, Span

pytestmark = pytest.mark.django_db


def _run(run_id: str) -> Run:
    return Run.objects.evaluations().get(run_id=run_id)


def test_the_run_page_shows_dataset_model_aggregates_and_rows_with_their_traces(client):
    base, _ = fill(20, 2)
    run = _run(base)
    html = client.get(f"/evaluations/{base}/").content.decode()

    assert f'href="/datasets/{run.evaluation_dataset_id}/"' in html
    assert f'href="/models/{run.model_id}/"' in html
    # exact passes on odd rows: 10 of 20
    assert re.search(r'data-scorer="exact".*?50\.0 %', html, re.S)
    assert html.count('<tr data-trace="') == 20
    trace = run.linked_traces.order_by("request_time").first()
    assert f'href="/traces/{trace.trace_id}/"' in html
    assert "exact on row 0" in html  # a rationale


def test_the_run_page_filters_by_a_scorers_result_and_sorts(client):
    base, _ = fill(20, 2)
    failed = client.get(f"/evaluations/{base}/?scorer=exact&result=fail").content.decode()
    assert failed.count('<tr data-trace="') == 10
    assert "I don&#x27;t know" in failed and ">answer 1<" not in failed

    by_latency = client.get(f"/evaluations/{base}/?sort=-latency").content.decode()
    shown = [float(ms) for ms in re.findall(r'<td class="num">([\d.]+) ms</td>', by_latency)]
    assert shown == sorted(shown, reverse=True) and len(shown) == 20


def test_a_long_run_is_paged(client):
    base, _ = fill(130, 2)
    first = client.get(f"/evaluations/{base}/").content.decode()
    second = client.get(f"/evaluations/{base}/?page=2").content.decode()
    assert first.count('<tr data-trace="') == 100
    assert second.count('<tr data-trace="') == 30
    assert "Page 2 of 2" in second


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_query_counts_do_not_grow_with_rows(client):
    small = fill(3, 2)
    large = fill(40, 2)
    assert _queries(client, f"/evaluations/{small[0]}/") == _queries(
        client, f"/evaluations/{large[0]}/"
    )
    assert _queries(client, f"/evaluations/compare/?runs={small[0]},{small[1]}") == _queries(
        client, f"/evaluations/compare/?runs={large[0]},{large[1]}"
    )
    assert _queries(client, "/evaluations/") <= 6


def test_compare_puts_regressions_first_and_links_both_traces(client):
    base, other = fill(20, 2)
    html = client.get(f"/evaluations/compare/?runs={base},{other}").content.decode()

    categories = re.findall(r'data-category="(\w+)"', html)
    # rows 1 and 11 regress, 2 and 12 improve (bench's fill)
    assert categories[:2] == ["regression", "regression"]
    assert categories[2:4] == ["improvement", "improvement"]
    assert set(categories[4:]) == {"unchanged"}
    first_row = html[html.index('data-category="regression"') :]
    first_row = first_row[: first_row.index("</tr>")]
    assert "question 1?" in first_row
    assert first_row.count("data-trace-link") == 2
    assert "2 regressions" in html and "baseline" in html

    changes = client.get(f"/evaluations/compare/?runs={base},{other}&changes=1").content.decode()
    assert re.findall(r'data-category="(\w+)"', changes) == categories[:4]


def test_compare_refuses_too_few_and_unknown_runs(client):
    base, _ = fill(2, 2)
    assert client.get(f"/evaluations/compare/?runs={base}").status_code == 400
    assert client.get(f"/evaluations/compare/?runs={base},nope").status_code == 404
    assert client.get("/evaluations/nope/").status_code == 404


def test_the_list_filters_by_experiment_and_model(client):
    first = Experiment.objects.create(name="first")
    second = Experiment.objects.create(name="second")
    a, b = fill(2, 2, experiment=first)
    (c,) = fill(2, 1, experiment=second)
    html = client.get("/evaluations/").content.decode()
    assert all(f'data-run="{run}"' in html for run in (a, b, c))

    only = client.get(f"/evaluations/?experiment={second.pk}").content.decode()
    assert f'data-run="{c}"' in only and f'data-run="{a}"' not in only
    model = _run(b).model_id
    by_model = client.get(f"/evaluations/?model={model}").content.decode()
    assert re.findall(r'data-run="([^"]+)"', by_model) == [b]


def test_other_experiments_runs_are_hidden(client, settings, alice, charlie):
    settings.SPYGLASS_AUTH = True
    private = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=private, level=Level.NONE)
    ExperimentGrant.objects.create(experiment=private, user=alice, level=Level.MANAGE)
    hidden, hidden2 = fill(2, 2, experiment=private)
    (shown,) = fill(2, 1)
    client.force_login(charlie)

    listed = client.get("/evaluations/").content.decode()
    assert f'data-run="{shown}"' in listed and f'data-run="{hidden}"' not in listed
    assert client.get(f"/evaluations/{hidden}/").status_code == 404
    assert client.get(f"/evaluations/compare/?runs={shown},{hidden}").status_code == 404
    client.force_login(alice)
    assert client.get(f"/evaluations/compare/?runs={hidden},{hidden2}").status_code == 200


def test_untrusted_text_is_escaped_everywhere(client):
    base, other = fill(len(CORPUS), 2)
    for run_id in (base, other):
        run = Run.objects.get(run_id=run_id)
        for i, span in enumerate(Span.objects.filter(trace__linked_runs=run).order_by("pk")):
            span.inputs = {CORPUS[i]: CORPUS[i]}
            span.outputs = CORPUS[i]
            span.save(update_fields=["inputs", "outputs"])
        feedback = Assessment.objects.filter(trace__linked_runs=run, name="relevance")
        for i, assessment in enumerate(feedback.order_by("pk")):
            assessment.name = CORPUS[i]  # scorer names, one per row
            assessment.rationale = CORPUS[i]
            assessment.save(update_fields=["name", "rationale"])
        Run.objects.filter(pk=run.pk).update(name=CORPUS[0])
    pages = [
        "/evaluations/",
        f"/evaluations/{base}/",
        f"/evaluations/{base}/?sort=-score:{CORPUS[1]}",
        f"/evaluations/compare/?runs={base},{other}",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert injected_markup(html) == [], url
        assert "&lt;script&gt;" in html, url


def test_a_model_versions_page_lists_its_evaluations(client):
    base, other = fill(3, 2)
    run = _run(base)
    html = client.get(f"/models/{run.model_id}/").content.decode()
    assert f'href="/evaluations/{base}/"' in html
    assert f'href="/evaluations/{other}/"' not in html  # another version's


def test_the_model_compare_page_shows_each_datasets_scores_and_links_the_comparison(client):
    base, other = fill(3, 2)
    first, second = _run(base), _run(other)
    html = client.get(f"/models/compare/?ids={first.model_id},{second.model_id}").content.decode()
    assert f'href="/evaluations/compare/?runs={base}%2C{other}"' in html
    assert f'href="/evaluations/{base}/"' in html and f'href="/evaluations/{other}/"' in html
    assert '<th scope="row" class="mono compare-key">exact</th>' in html
