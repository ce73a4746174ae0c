"""The XSS corpus in every evaluation field, stored through the MLflow REST API: the pages that
show evaluation data (scorer metrics and their dataset names, assessments, costs and the
priced model's name) show it escaped, never as markup; what no page shows yet (datasets,
records, dataset tags, registered scorers, run inputs) is answered as JSON, never HTML.
The browser's view of the same pages: tests/e2e/test_evaluation_xss.py."""

from __future__ import annotations

import contextlib
import json

import pytest
from django.utils.html import escape

from tests.xss import CORPUS, EvaluationCorpus, injected_markup, quote, store_evaluation_corpus

pytestmark = pytest.mark.django_db
MARKUP = [item for item in CORPUS if "<" in item]


@pytest.fixture
def corpus(client, artifact_root) -> EvaluationCorpus:
    return store_evaluation_corpus(client)


def test_the_checker_finds_the_corpus_unescaped():
    html = "<main>" + "".join(CORPUS) + "</main>"

    found = injected_markup(html)

    assert "an inline <script>" in found
    assert "<img onerror=...>" in found
    assert "<svg onload=...>" in found
    assert any(f.startswith('<a href="javascript:') for f in found)
    assert "<iframe>" in found and "<style>" in found
    assert "<details ontoggle=...>" in found
    assert injected_markup("<main>" + "".join(escape(item) for item in CORPUS) + "</main>") == []


def test_every_page_with_evaluation_data_shows_the_corpus_only_escaped(client, corpus):
    requests = [(path, {}) for path in corpus.pages()]
    requests += [(path, {"HX-Request": "true"}) for path in corpus.fragments()]
    for path, headers in requests:
        response = client.get(path, headers=headers)

        assert response.status_code == 200, path
        assert response["Content-Type"].startswith("text/html"), path
        html = response.content.decode()
        assert injected_markup(html) == [], path
        for item in MARKUP:
            assert item not in html, (path, item)


def test_the_corpus_is_on_those_pages_as_text(client, corpus):
    first = corpus.model_ids[0]
    model = client.get(f"/models/{first}/").content.decode()
    compare = client.get(f"/models/compare/?ids={first},{corpus.model_ids[1]}").content.decode()
    trace = client.get(f"/traces/{corpus.trace_id}/").content.decode()
    listed = client.get("/models/?cols=1&col=" + quote(f"metric:{CORPUS[0]}/mean")).content

    for i, item in enumerate(CORPUS):
        assert escape(f"{item}/mean") in model  # the scorer's metric
        assert escape(item) in model  # the dataset it was measured on
        assert escape(f"{item}/mean ({item})") in compare
        assert escape(item) in trace  # the scorer's assessment
        span = client.get(f"/traces/{corpus.trace_id}/spans/{corpus.span_ids[i + 1]}/")
        assert escape(item) in span.content.decode()  # the priced model, beside the cost
    assert escape(f"{CORPUS[0]}/mean").encode() in listed


def test_a_cost_sent_as_text_shows_as_unknown(client, corpus):
    priced = corpus.span_ids[-1]
    html = client.get(f"/traces/{corpus.trace_id}/spans/{priced}/").content.decode()

    facts = html[html.index('class="span-facts') : html.index("</dl>")]
    assert "<dt>Cost</dt><dd>—" in facts  # the client's cost is no number: not priced, not shown


def test_reads_of_the_corpus_through_the_api_are_json_never_html(client, corpus):
    for path in corpus.api_reads():
        response = client.get(path)

        assert response.status_code == 200, path
        assert response["Content-Type"] == "application/json", path
        assert response["X-Content-Type-Options"] == "nosniff", path
        texts = texts_in(response.json())
        assert any(item in text for item in CORPUS for text in texts), path


def texts_in(value: object) -> set[str]:
    """Every string in a JSON value, and in the JSON text it holds (MLflow sends records,
    tags and scorers as JSON text inside its JSON)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += [*item, *item.values()]
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str):
            found.add(item)
            if item[:1] in ("[", "{"):
                with contextlib.suppress(ValueError):
                    stack.append(json.loads(item))
    return found


def test_errors_that_repeat_the_corpus_are_json(client, corpus):
    e = corpus.experiment_id
    d, s = "/api/3.0/mlflow/datasets/", "/api/3.0/mlflow/scorers/"
    paths = [
        *(f"{d}{quote(item)}" for item in CORPUS),
        *(f"{d}{quote(item)}/records" for item in CORPUS),
        *(f"{s}get?experiment_id={e}&name={quote(item + ' unknown')}" for item in CORPUS),
    ]

    for path in paths:
        response = client.get(path)

        assert 400 <= response.status_code < 500, path
        assert response["Content-Type"] == "application/json", path
        assert set(response.json()) == {"error_code", "message"}


def test_the_corpus_comes_back_exactly_as_it_was_sent(client, corpus):
    d, s = "/api/3.0/mlflow/datasets/", "/api/3.0/mlflow/scorers/"
    for item, dataset_id in zip(CORPUS, corpus.dataset_ids, strict=True):
        dataset = client.get(d + dataset_id).json()["dataset"]
        assert dataset["name"] == item
        assert json.loads(dataset["tags"]) == {item: item, "mlflow.user": item, "note": item}
        (record,) = json.loads(client.get(f"{d}{dataset_id}/records").json()["records"])
        assert record["inputs"] == {item: item, "question": item}
        assert record["expectations"] == {item: item}
        assert record["outputs"] == record["source_id"] == item
        assert record["tags"] == {item: item}
    scorers = client.get(s + "list", {"experiment_id": corpus.experiment_id}).json()["scorers"]
    assert sorted(scorer["scorer_name"] for scorer in scorers) == sorted(CORPUS)
    run = client.get("/api/2.0/mlflow/runs/get", {"run_id": corpus.run_id}).json()["run"]
    logged = [i["dataset"]["name"] for i in run["inputs"]["dataset_inputs"]]
    assert sorted(logged) == sorted(CORPUS)
    summaries = client.post(
        "/api/2.0/mlflow/experiments/search-datasets",
        {"experiment_ids": [corpus.experiment_id]},
        content_type="application/json",
    )
    assert summaries["Content-Type"] == "application/json"
    assert sorted(s["name"] for s in summaries.json()["dataset_summaries"]) == sorted(CORPUS)
    assert {s["context"] for s in summaries.json()["dataset_summaries"]} == set(CORPUS)
