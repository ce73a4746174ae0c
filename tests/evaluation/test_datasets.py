"""Dataset pages (evaluation/views/datasets.py): the list, one dataset's records, the inline
expectations editor, deleting records, and "Add to dataset" from selected traces."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from access.models import ExperimentGrant, Level
from evaluation.views import datasets as views
from tests.xss import CORPUS, injected_markup
from tracking.datasets import EvaluationDataset
from tracking.models import Assessment, Experiment, Run, RunDataset, Span, Trace

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


def make_dataset(experiment: Experiment, name: str = "refunds", n: int = 2) -> EvaluationDataset:
    dataset = EvaluationDataset.create(name, {"team": "cs"}, [experiment.pk])
    records = [
        {"inputs": {"question": f"q{i}"}, "expectations": {"expected_response": f"a{i}"}}
        for i in range(n)
    ]
    if records:
        dataset.merge_records(records)
    return dataset


def make_trace(experiment: Experiment, n: int, question: str, answer: str | None) -> Trace:
    trace = Trace.objects.create(
        experiment=experiment,
        trace_id=f"tr-{n:032x}",
        name=f"agent-{n}",
        state="OK",
        request_time=timezone.now() + timedelta(seconds=n),
        span_count=2,
    )
    Span.objects.create(
        trace=trace, span_id=f"{n:016x}", name="agent", start_ns=0, end_ns=10,
        inputs={"question": question}, outputs=answer,
    )  # fmt: skip
    Span.objects.create(
        trace=trace, span_id=f"{n + 1000:016x}", parent_span_id=f"{n:016x}", name="llm",
        start_ns=1, end_ns=9, inputs={"messages": []}, outputs="inner",
    )  # fmt: skip
    return trace


# --- The list ------------------------------------------------------------------------------


def test_the_list_shows_counts_experiments_and_newest_update_first(client, experiment):
    old = make_dataset(experiment, "old", n=3)
    new = make_dataset(experiment, "new", n=1)

    html = client.get("/datasets/").content.decode()

    assert html.index(new.dataset_id) < html.index(old.dataset_id)
    assert ">3</td>" in html and ">1</td>" in html
    assert experiment.name in html


def test_the_list_searches_by_name(client, experiment):
    make_dataset(experiment, "refund questions")
    other = make_dataset(experiment, "shipping")

    html = client.get("/datasets/?q=REFUND").content.decode()

    assert "refund questions" in html and other.dataset_id not in html


def test_the_list_pages_by_keyset_in_a_constant_number_of_queries(
    client, experiment, django_assert_max_num_queries
):
    for i in range(views.DATASETS_PER_PAGE + 5):
        make_dataset(experiment, f"ds-{i:03}", n=0)

    with django_assert_max_num_queries(6):
        first = client.get("/datasets/")
    html = first.content.decode()
    assert html.count('class="dataset-link"') == views.DATASETS_PER_PAGE
    after = html.split('rel="next" href="?')[1].split('"')[0].replace("&amp;", "&")

    with django_assert_max_num_queries(6):
        second = client.get(f"/datasets/?{after}").content.decode()
    assert second.count('class="dataset-link"') == 5
    assert "ds-000" in second and "ds-000" not in html


def test_a_malformed_cursor_is_a_400(client):
    assert client.get("/datasets/?after=nonsense").status_code == 400


# --- One dataset ----------------------------------------------------------------------------


def test_the_page_shows_header_records_and_evaluations(
    client, experiment, django_assert_max_num_queries
):
    dataset = make_dataset(experiment, n=3)
    run = Run.objects.create(
        experiment=experiment, name="eval-1", tags={"mlflow.runType": "genai_evaluate"}
    )
    RunDataset.objects.create(run=run, dataset=dataset, name=dataset.name, digest=dataset.digest)

    with django_assert_max_num_queries(12):
        response = client.get(f"/datasets/{dataset.dataset_id}/")

    html = response.content.decode()
    assert dataset.digest in html and "team" in html
    assert html.count('class="record"') == 3
    assert f'href="/evaluations/{run.run_id}/"' in html
    assert 'id="dataset-actions"' in html


def test_records_are_searched_in_inputs_and_expectations(client, experiment):
    dataset = make_dataset(experiment, n=3)

    by_input = client.get(f"/datasets/{dataset.dataset_id}/?q=q1").content.decode()
    by_expectation = client.get(f"/datasets/{dataset.dataset_id}/?q=a2").content.decode()

    assert by_input.count('class="record"') == 1 and "q1" in by_input
    assert by_expectation.count('class="record"') == 1 and "q2" in by_expectation


def test_records_page_by_keyset(client, experiment):
    dataset = make_dataset(experiment, n=views.RECORDS_PER_PAGE + 2)

    html = client.get(f"/datasets/{dataset.dataset_id}/").content.decode()
    after = html.split('rel="next" href="?')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(f"/datasets/{dataset.dataset_id}/?{after}", headers=HTMX)

    assert html.count('class="record"') == views.RECORDS_PER_PAGE
    assert second.content.decode().count('class="record"') == 2
    assert second.content.decode().lstrip().startswith('<div id="records"')


def test_a_trace_source_links_to_the_trace(client, experiment):
    dataset = make_dataset(experiment, n=0)
    source = {"source_type": "TRACE", "source_data": {"trace_id": "tr-1"}}
    dataset.merge_records([{"inputs": {"q": 1}, "source": source}])

    html = client.get(f"/datasets/{dataset.dataset_id}/").content.decode()

    assert 'href="/traces/tr-1/"' in html


def test_an_unknown_dataset_is_a_404(client):
    assert client.get("/datasets/d-" + "0" * 32 + "/").status_code == 404
    assert client.get("/datasets/nonsense/").status_code == 404


# --- Editing expectations -------------------------------------------------------------------


def test_it_saves_expectations_inline(client, experiment):
    dataset = make_dataset(experiment, n=1)
    record = dataset.records.get()
    digest = dataset.digest

    response = client.post(
        f"/datasets/{dataset.dataset_id}/records/{record.record_id}/",
        {"expectations": '{"expected_response": "Refunds take 5 days", "max_words": 20}'},
        headers=HTMX,
    )

    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith(f'<tr id="record-{record.record_id}"')
    record.refresh_from_db()
    assert record.expectations == {"expected_response": "Refunds take 5 days", "max_words": 20}
    dataset.refresh_from_db()
    assert dataset.digest != digest
    assert dataset.schema["expectations"]["max_words"] == "integer"


@pytest.mark.parametrize("text", ["{not json", '["a list"]', '{"a": NaN}', "{" * 2000 + "}" * 2000])
def test_bad_expectations_are_a_422_with_the_error_in_place(client, experiment, text):
    dataset = make_dataset(experiment, n=1)
    record = dataset.records.get()

    response = client.post(
        f"/datasets/{dataset.dataset_id}/records/{record.record_id}/",
        {"expectations": text},
        headers=HTMX,
    )

    assert response.status_code == 422
    html = response.content.decode()
    assert 'role="alert"' in html and '<details class="expectations-edit" open>' in html
    record.refresh_from_db()
    assert record.expectations == {"expected_response": "a0"}


def test_empty_expectations_clear_them(client, experiment):
    dataset = make_dataset(experiment, n=1)
    record = dataset.records.get()

    client.post(
        f"/datasets/{dataset.dataset_id}/records/{record.record_id}/", {"expectations": " "}
    )

    record.refresh_from_db()
    assert record.expectations is None


# --- Deleting records -----------------------------------------------------------------------


def test_it_deletes_one_record_or_the_selected_ones(client, experiment):
    dataset = make_dataset(experiment, n=4)
    ids = list(dataset.records.order_by("created_at", "pk").values_list("record_id", flat=True))

    one = client.post(f"/datasets/{dataset.dataset_id}/records/delete/", {"record": ids[0]})
    some = client.post(f"/datasets/{dataset.dataset_id}/records/delete/", {"record": ids[1:3]})

    assert one.status_code == some.status_code == 302
    assert list(dataset.records.values_list("record_id", flat=True)) == ids[3:]
    dataset.refresh_from_db()
    assert dataset.record_count == 1


# --- Access ---------------------------------------------------------------------------------


@pytest.fixture
def shared(experiment, auth_on) -> EvaluationDataset:
    return make_dataset(experiment, n=1)


def test_a_viewer_reads_but_sees_no_buttons_and_gets_403(client, charlie, shared):
    client.force_login(charlie)
    record = shared.records.get()

    html = client.get(f"/datasets/{shared.dataset_id}/").content.decode()
    edit = client.post(
        f"/datasets/{shared.dataset_id}/records/{record.record_id}/", {"expectations": "{}"}
    )
    delete = client.post(
        f"/datasets/{shared.dataset_id}/records/delete/", {"record": record.record_id}
    )

    assert "Delete" not in html and "expectations-edit" not in html and "Edit" not in html
    assert edit.status_code == delete.status_code == 403
    assert shared.records.count() == 1


def test_an_editor_sees_the_buttons(client, bob, shared):
    client.force_login(bob)

    html = client.get(f"/datasets/{shared.dataset_id}/").content.decode()

    assert "expectations-edit" in html and "Delete selected" in html


def test_a_dataset_of_a_private_experiment_is_hidden(client, bob, experiment, shared):
    ExperimentGrant.objects.create(experiment=experiment, level=Level.NONE)
    client.force_login(bob)
    record = shared.records.get()

    assert shared.dataset_id not in client.get("/datasets/").content.decode()
    assert client.get(f"/datasets/{shared.dataset_id}/").status_code == 404
    edit = client.post(
        f"/datasets/{shared.dataset_id}/records/{record.record_id}/", {"expectations": "{}"}
    )
    assert edit.status_code == 404


def test_a_dataset_linked_to_a_hidden_experiment_too_is_hidden(client, bob, experiment, shared):
    private = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=private, level=Level.NONE)
    shared.add_experiments([private.pk])
    client.force_login(bob)

    assert client.get(f"/datasets/{shared.dataset_id}/").status_code == 404


# --- Add to dataset -------------------------------------------------------------------------


def test_the_trace_list_offers_add_to_dataset(client, experiment):
    make_trace(experiment, 1, "hi", "hello")

    html = client.get("/traces/").content.decode()

    assert 'formaction="/datasets/add/"' in html


def test_the_first_step_shows_the_choice(client, experiment):
    traces = [make_trace(experiment, n, f"q{n}", f"a{n}") for n in (1, 2)]
    existing = make_dataset(experiment, "existing one", n=0)

    response = client.post("/datasets/add/", {"trace": [t.trace_id for t in traces]})

    html = response.content.decode()
    assert response.status_code == 200
    assert "Add 2 traces to a dataset" in html and existing.dataset_id in html
    assert 'name="use_outputs" checked' in html


def test_selected_traces_make_a_new_dataset(client, experiment):
    traces = [make_trace(experiment, n, f"q{n}", f"a{n}") for n in (1, 2, 3)]
    Assessment.objects.create(
        trace=traces[0], assessment_id="a-1", name="tone", kind="expectation", value="polite"
    )

    response = client.post(
        "/datasets/add/",
        {"trace": [t.trace_id for t in traces], "dataset": "new", "name": "from traces",
         "use_outputs": "on", "confirm": "yes"},
    )  # fmt: skip

    dataset = EvaluationDataset.objects.get(name="from traces")
    assert response.status_code == 302
    assert response["Location"] == f"/datasets/{dataset.dataset_id}/"
    assert dataset.experiment_ids() == [str(experiment.pk)]
    records = {r.inputs["question"]: r for r in dataset.records.all()}
    assert sorted(records) == ["q1", "q2", "q3"]
    first = records["q1"]
    assert first.expectations == {"tone": "polite", "expected_response": "a1"}
    assert first.outputs == {"mlflow_wrapped": "a1"}
    assert first.source_type == "TRACE" and first.source_id == traces[0].trace_id


def test_outputs_are_not_expectations_unless_ticked(client, experiment):
    trace = make_trace(experiment, 1, "q", "a")

    client.post(
        "/datasets/add/",
        {"trace": trace.trace_id, "dataset": "new", "name": "plain", "confirm": "yes"},
    )

    record = EvaluationDataset.objects.get(name="plain").records.get()
    assert record.expectations is None or record.expectations == {}


def test_traces_are_merged_into_an_existing_dataset_by_inputs(client, experiment):
    dataset = make_dataset(experiment, n=2)  # inputs q0, q1
    duplicate = make_trace(experiment, 1, "q1", "new answer")
    twin = make_trace(experiment, 2, "q1", "twin answer")  # the same inputs again
    fresh = make_trace(experiment, 3, "q9", "a9")

    client.post(
        "/datasets/add/",
        {"trace": [duplicate.trace_id, twin.trace_id, fresh.trace_id],
         "dataset": dataset.dataset_id, "use_outputs": "on", "confirm": "yes"},
    )  # fmt: skip

    assert dataset.records.count() == 3
    merged = dataset.records.get(inputs={"question": "q1"})
    assert merged.expectations == {"expected_response": "twin answer"}
    dataset.refresh_from_db()
    assert dataset.record_count == 3


def test_a_new_dataset_needs_a_name(client, experiment):
    trace = make_trace(experiment, 1, "q", "a")

    response = client.post(
        "/datasets/add/", {"trace": trace.trace_id, "dataset": "new", "name": " ", "confirm": "yes"}
    )

    assert response.status_code == 422
    assert not EvaluationDataset.objects.exists()


def test_a_viewer_may_not_add_traces(client, charlie, experiment, auth_on):
    trace = make_trace(experiment, 1, "q", "a")
    client.force_login(charlie)

    response = client.post(
        "/datasets/add/", {"trace": trace.trace_id, "dataset": "new", "name": "x", "confirm": "yes"}
    )

    assert response.status_code == 403
    assert not EvaluationDataset.objects.exists()


def test_the_trace_page_offers_add_to_dataset(client, experiment):
    trace = make_trace(experiment, 1, "q", "a")

    html = client.get(f"/traces/{trace.trace_id}/").content.decode()

    assert 'action="/datasets/add/"' in html and f'value="{trace.trace_id}"' in html


# --- XSS ------------------------------------------------------------------------------------


def test_the_corpus_in_names_records_and_tags_is_shown_escaped(client, experiment):
    ids = []
    for item in CORPUS:
        dataset = EvaluationDataset.create(item, {item: item}, [experiment.pk])
        dataset.merge_records(
            [{"inputs": {item: item}, "expectations": {item: item}, "tags": {item: item},
              "source": {"source_type": "HUMAN", "source_data": {"source_id": item}}}]
        )  # fmt: skip
        ids.append(dataset.dataset_id)
    trace = make_trace(experiment, 1, CORPUS[0], CORPUS[1])

    pages = ["/datasets/", *(f"/datasets/{i}/" for i in ids), f"/datasets/?q={CORPUS[0]}"]
    for path in pages:
        html = client.get(path).content.decode()
        assert injected_markup(html) == [], path
    record = EvaluationDataset.objects.get(dataset_id=ids[0]).records.get()
    bad = client.post(
        f"/datasets/{ids[0]}/records/{record.record_id}/",
        {"expectations": CORPUS[1]},
        headers=HTMX,
    )
    good = client.post(
        f"/datasets/{ids[0]}/records/{record.record_id}/",
        {"expectations": json.dumps({"x": CORPUS[2]})},
        headers=HTMX,
    )
    added = client.post("/datasets/add/", {"trace": trace.trace_id})
    for response in (bad, good, added):
        assert injected_markup(response.content.decode()) == []
