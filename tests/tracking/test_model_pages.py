from __future__ import annotations

from datetime import timedelta

import pytest

from tests.rows import T0, XSS, XSS_ESCAPED, make_model, make_trace
from tracking.models import (
    CANCELLED_TAG,
    Experiment,
    Metric,
    ModelVersion,
    RegisteredModel,
    TraceState,
)
from tracking.views import logged_models

# --- /models/ -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_model_list_groups_versions_by_name_newest_first(client, experiment):
    v1 = make_model(experiment, created_at=T0, params={"temperature": "0.2"})
    v2 = make_model(
        experiment,
        created_at=T0 + timedelta(hours=1),
        tags={"mlflow.source.git.commit": "0123456789abcdef"},
        params={"temperature": "0.7", "a": "1", "b": "2", "c": "3", "d": "4"},
        status="LOGGED_MODEL_READY",
    )
    make_model(experiment, name="billing-agent", created_at=T0 - timedelta(days=1))
    make_trace(experiment, 1, model_id=v2.model_id)
    make_trace(experiment, 2, model_id=v2.model_id)

    response = client.get("/models/")

    assert response.status_code == 200
    groups = response.context["groups"]
    assert [g.name for g in groups] == ["support-agent", "billing-agent"]
    assert [v.model_id for v in groups[0].versions] == [v2.model_id, v1.model_id]
    assert [v.number for v in groups[0].versions] == [2, 1]
    assert [v.counts and v.counts.count for v in groups[0].versions] == [2, None]
    html = response.content.decode()
    assert ">0123456<" in html  # short commit
    # The four most common params are the default columns.
    assert [c.value for c in response.context["chosen"]] == [
        "param:temperature", "param:a", "param:b", "param:c"
    ]  # fmt: skip
    assert f'href="/traces/?model={v2.model_id}"' in html
    assert "Ready" in html
    assert f'name="ids" value="{v2.model_id}" form="compare-form"' in html


@pytest.mark.django_db
def test_model_list_says_how_many_versions_it_does_not_list(client, experiment, monkeypatch):
    monkeypatch.setattr(logged_models, "VERSIONS_PER_NAME", 2)
    for hour in range(5):
        make_model(experiment, created_at=T0 + timedelta(hours=hour))

    response = client.get("/models/")

    (group,) = response.context["groups"]
    assert len(group.versions) == 2
    assert "3 older versions not listed." in response.content.decode()


@pytest.mark.django_db
def test_model_list_escapes_model_names(client, experiment):
    make_model(experiment, name=XSS, params={XSS: XSS})

    html = client.get("/models/").content.decode()

    assert XSS_ESCAPED in html
    assert XSS not in html


@pytest.mark.django_db
def test_model_list_says_when_there_are_no_models(client):
    assert "No logged models yet" in client.get("/models/").content.decode()


@pytest.mark.django_db
def test_model_list_queries_do_not_grow_with_rows(
    client, experiment, django_assert_max_num_queries
):
    for i in range(4):
        for hour in range(3):
            model = make_model(experiment, name=f"agent-{i}", created_at=T0 + timedelta(hours=hour))
            make_trace(experiment, i * 10 + hour, model_id=model.model_id)

    # names, versions, trace counts, registry versions, metrics
    with django_assert_max_num_queries(5):
        response = client.get("/models/")

    assert sum(len(g.versions) for g in response.context["groups"]) == 12


@pytest.mark.django_db
def test_model_list_says_where_a_version_is_registered(client, experiment):
    first, second = make_model(experiment), make_model(experiment)
    registered = RegisteredModel.objects.create(name="support-bot", aliases={"champion": 2})
    ModelVersion.objects.create(registered_model=registered, version=1, model_id=first.model_id)
    ModelVersion.objects.create(registered_model=registered, version=2, model_id=second.model_id)

    response = client.get("/models/")

    labels = {v.model_id: v.registry_labels for v in response.context["groups"][0].versions}
    assert labels == {first.model_id: ["support-bot v1"],
                      second.model_id: ["support-bot v2 @champion"]}  # fmt: skip
    assert "support-bot v2 @champion" in response.content.decode()


# --- /models/<model_id>/ --------------------------------------------------------------------


@pytest.mark.django_db
def test_model_detail_shows_the_version(client, experiment):
    model = make_model(
        experiment,
        params={"temperature": "0.2"},
        tags={"mlflow.source.git.commit": "abcdef0123456789", "team": "support"},
        model_config={"endpoint": "https://llm.example/v1", "max_tokens": 512},
    )
    other = make_model(experiment, created_at=T0)
    Metric.objects.create(logged_model=model, key="accuracy", value=0.5, timestamp_ms=1, step=0)
    Metric.objects.create(logged_model=model, key="accuracy", value=0.75, timestamp_ms=2, step=1)
    make_trace(experiment, 1, name="linked trace", model_id=model.model_id)
    make_trace(experiment, 2, name="other trace", model_id=other.model_id)

    response = client.get(f"/models/{model.model_id}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "temperature" in html
    assert '<span class="config-key">max_tokens</span>' in html  # the config as a tree
    assert "abcdef0" in html
    assert [(m.key, m.step, m.value) for m in response.context["metrics"]] == [
        ("accuracy", 0, 0.5),
        ("accuracy", 1, 0.75),
    ]
    assert response.context["trace_count"] == 1
    assert 'href="/playground/?model=' in html
    assert f'href="/models/{other.model_id}/"' in html  # the other version of this name


@pytest.mark.django_db
def test_model_detail_escapes_user_content(client, experiment):
    model = make_model(experiment, name=XSS, model_config={"instructions": XSS}, tags={"x": XSS})

    html = client.get(f"/models/{model.model_id}/").content.decode()

    assert XSS not in html
    assert XSS_ESCAPED in html


@pytest.mark.django_db
def test_model_detail_404s_for_an_unknown_model(client):
    assert client.get("/models/m-00000000000000000000000000000000/").status_code == 404


@pytest.mark.django_db
def test_model_detail_runs_a_fixed_number_of_queries(
    client, experiment, django_assert_max_num_queries
):
    model = make_model(experiment, params={"a": "1"})
    for n in range(10):
        make_trace(experiment, n, model_id=model.model_id)
        Metric.objects.create(logged_model=model, key=f"m{n}", value=n, timestamp_ms=n)

    # One of them looks for its history by name, then (a name with one version) by experiment;
    # two read its evaluations (the runs, their scores).
    with django_assert_max_num_queries(8):
        response = client.get(f"/models/{model.model_id}/")

    assert response.status_code == 200


@pytest.mark.django_db
def test_model_list_searches_by_name_param_and_tag(client, experiment):
    make_model(experiment, name="support-agent", params={"temperature": "0.2"})
    make_model(experiment, name="support-agent", params={"temperature": "0.7"}, tags={"t": "x"})
    make_model(experiment, name="billing-agent", params={"temperature": "0.7"})

    def names(q):
        groups = client.get("/models/", {"q": q}).context["groups"]
        return sorted((g.name, len(g.versions)) for g in groups)

    assert names("name LIKE 'support%'") == [("support-agent", 2)]
    assert names("params.temperature = '0.7'") == [("billing-agent", 1), ("support-agent", 1)]
    assert names("tags.t = 'x'") == [("support-agent", 1)]


@pytest.mark.django_db
def test_model_list_keeps_real_version_numbers_when_searching(client, experiment):
    for hour in range(3):
        make_model(experiment, created_at=T0 + timedelta(hours=hour), params={"h": str(hour)})

    (group,) = client.get("/models/", {"q": "params.h = '1'"}).context["groups"]

    assert [v.number for v in group.versions] == [2]


@pytest.mark.django_db
def test_model_list_explains_a_bad_search_inline(client, experiment):
    make_model(experiment)

    response = client.get("/models/", {"q": f"params.x === {XSS}"})

    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html
    assert XSS not in html


@pytest.mark.django_db
def test_model_list_shows_chosen_param_and_metric_columns_and_error_rate(client, experiment):
    model = make_model(experiment, params={"temperature": "0.2", "llm": "gpt-4o"})
    Metric.objects.create(logged_model=model, key="accuracy", value=0.8125, timestamp_ms=1)
    make_trace(experiment, 1, model_id=model.model_id)
    make_trace(experiment, 2, model_id=model.model_id, state="ERROR")

    response = client.get("/models/", {"cols": "1", "col": ["param:llm", "metric:accuracy"]})

    (version,) = response.context["groups"][0].versions
    assert version.cells == [("gpt-4o", False), ("0.8125", True)]
    html = response.content.decode()
    assert "0.8125" in html and "gpt-4o" in html
    assert "50.0 %" in html
    assert [c.value for c in response.context["available"]] == [
        "param:llm", "param:temperature", "metric:accuracy"
    ]  # fmt: skip


@pytest.mark.django_db
def test_model_list_shows_a_param_column_only_on_groups_that_have_it(client, experiment):
    make_model(experiment, name="rag", params={"retriever_endpoint_url": "https://x.test/search"})
    make_model(experiment, name="router", params={"routes": "3"}, created_at=T0)

    # By name: with one version a name, the list would group by experiment by default.
    response = client.get("/models/", {"by": "name"})

    groups = {g.name: g for g in response.context["groups"]}
    assert [c.key for c in groups["rag"].columns] == ["retriever_endpoint_url"]
    assert [c.key for c in groups["router"].columns] == ["routes"]
    assert groups["router"].versions[0].cells == [("3", False)]
    html = response.content.decode()
    assert html.count("</span>retriever_endpoint_url</th>") == 1
    assert html.count('<td class="mono small chosen-column">') == 2  # one per version


@pytest.mark.django_db
def test_a_version_registered_under_two_names_keeps_its_cells_in_both_groups(client, experiment):
    shared = make_model(experiment, name="agent", params={"llm": "gpt-4o"})
    other = make_model(experiment, name="agent", params={"top_k": "5"}, created_at=T0)
    register("support-bot", shared, other)
    register("billing-bot", shared)

    response = client.get("/models/", {"by": "registered", "cols": "1", "col": ["param:llm"]})

    groups = {g.name: g for g in response.context["groups"]}
    assert [v.cells for v in groups["support-bot"].versions] == [
        [("—", False)],
        [("gpt-4o", False)],
    ]
    assert [v.cells for v in groups["billing-bot"].versions] == [[("gpt-4o", False)]]


@pytest.mark.django_db
def test_model_list_links_the_commit_when_the_repo_is_known(client, experiment):
    make_model(
        experiment,
        tags={
            "mlflow.source.git.commit": "0123456789abcdef",
            "mlflow.source.git.branch": "main",
            "mlflow.source.git.repoURL": "https://github.com/acme/agent",
        },
    )

    html = client.get("/models/").content.decode()

    assert 'href="https://github.com/acme/agent/commit/0123456789abcdef"' in html
    assert "main" in html


# --- /models/<model_id>/traces/ -------------------------------------------------------------


@pytest.mark.django_db
def test_model_traces_shows_statistics_histogram_and_only_its_traces(client, experiment):
    model = make_model(experiment)
    other = make_model(experiment)
    for n in range(4):
        make_trace(experiment, n, name=f"linked {n}", model_id=model.model_id,
                   duration_ns=(n + 1) * 100_000_000)  # fmt: skip
    make_trace(experiment, 9, name="other trace", model_id=other.model_id)

    response = client.get(f"/models/{model.model_id}/traces/")

    assert response.status_code == 200
    stats = response.context["stats"]
    assert (stats.count, stats.p50) == (4, 250_000_000)
    html = response.content.decode()
    assert "linked 3" in html and "other trace" not in html
    assert "<svg viewBox" in html and "<rect" in html
    assert "250 ms" in html


@pytest.mark.django_db
def test_model_traces_shows_a_cancelled_answer_as_cancelled(client, experiment):
    model = make_model(experiment)
    make_trace(experiment, 1, model_id=model.model_id, tags={CANCELLED_TAG: "true"})
    make_trace(experiment, 2, model_id=model.model_id, state=TraceState.ERROR)

    html = client.get(f"/models/{model.model_id}/traces/").content.decode()

    assert html.count('class="badge state-cancelled"') == 1
    assert html.count('class="badge state-error"') == 1


@pytest.mark.django_db
def test_model_traces_404s_for_an_unknown_model(client):
    assert client.get("/models/m-nope/traces/").status_code == 404


@pytest.mark.django_db
def test_model_traces_runs_a_fixed_number_of_queries(
    client, experiment, django_assert_max_num_queries
):
    model = make_model(experiment)
    for n in range(10):
        make_trace(experiment, n, model_id=model.model_id, duration_ns=n * 1_000_000)

    with django_assert_max_num_queries(5):
        assert client.get(f"/models/{model.model_id}/traces/").status_code == 200


# --- /models/<model_id>/artifacts/ ----------------------------------------------------------

MLMODEL = """\
artifact_path: agent
flavors:
  python_function:
    config:
      llm: gpt-4o
    loader_module: mlflow.pyfunc.model
mlflow_version: 3.1.0
model_id: {model_id}
signature:
  inputs: '[{{"type": "string", "name": "question", "required": true}}]'
  outputs: '[{{"type": "string", "required": true}}]'
"""


@pytest.fixture
def artifact_storage(tmp_path, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path},
        },
    }
    return tmp_path


def stored_model(experiment, root):
    model = make_model(experiment)
    model.artifact_location = f"mlflow-artifacts:/{experiment.pk}/models/{model.model_id}/artifacts"
    model.save()
    folder = root / str(experiment.pk) / "models" / model.model_id / "artifacts"
    (folder / "code").mkdir(parents=True)
    (folder / "MLmodel").write_text(MLMODEL.format(model_id=model.model_id))
    (folder / "input_example.json").write_text('{"question": "' + XSS + '"}')
    (folder / "code" / "agent.py").write_text("print('hi')\n")
    (folder / "model.pkl").write_bytes(b"\x80\x04\xff\xfe")
    return model


@pytest.mark.django_db
def test_model_artifacts_lists_the_version_folder(client, experiment, artifact_storage):
    model = stored_model(experiment, artifact_storage)

    response = client.get(f"/models/{model.model_id}/artifacts/")

    assert response.status_code == 200
    directories, files = response.context["listing"]
    assert directories == ["code"]
    assert [name for name, _ in files] == ["MLmodel", "input_example.json", "model.pkl"]
    assert "?path=code" in response.content.decode()


@pytest.mark.django_db
def test_model_artifacts_names_the_version_as_the_other_tabs_do(
    client, experiment, artifact_storage
):
    make_model(experiment, created_at=T0 - timedelta(days=1))
    model = stored_model(experiment, artifact_storage)

    html = client.get(f"/models/{model.model_id}/artifacts/").content.decode()

    assert '<span aria-hidden="true">/</span> v2\n</nav>' in html
    assert '<span class="version-tag">v2</span>' in html


@pytest.mark.django_db
def test_model_artifacts_shows_mlmodel_signature_and_json_readably(
    client, experiment, artifact_storage
):
    model = stored_model(experiment, artifact_storage)

    mlmodel = client.get(f"/models/{model.model_id}/artifacts/", {"path": "MLmodel"})
    example = client.get(f"/models/{model.model_id}/artifacts/", {"path": "input_example.json"})
    binary = client.get(f"/models/{model.model_id}/artifacts/", {"path": "model.pkl"})
    nested = client.get(f"/models/{model.model_id}/artifacts/", {"path": "code/agent.py"})

    parsed = mlmodel.context["file"]["mlmodel"]
    assert parsed["flavors"] == ["python_function"]
    assert '"name": "question"' in parsed["signature"]["inputs"]
    assert XSS not in example.content.decode()
    assert "&quot;question&quot;: &quot;" + XSS_ESCAPED in example.content.decode()
    assert binary.context["file"]["binary"]
    assert "print(&#x27;hi&#x27;)" in nested.content.decode()


@pytest.mark.django_db
def test_model_artifact_download_sends_the_file(client, experiment, artifact_storage):
    model = stored_model(experiment, artifact_storage)

    response = client.get(f"/models/{model.model_id}/artifacts/download/", {"path": "model.pkl"})

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x80\x04\xff\xfe"
    assert "attachment" in response["Content-Disposition"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["../../etc/passwd", "code/../../x", "a\\b", "nope.txt", "/"])
def test_model_artifacts_refuse_paths_outside_or_missing(
    client, experiment, artifact_storage, path
):
    model = stored_model(experiment, artifact_storage)

    page = client.get(f"/models/{model.model_id}/artifacts/", {"path": path})
    download = client.get(f"/models/{model.model_id}/artifacts/download/", {"path": path})

    assert page.status_code == (200 if path == "/" else 404)
    assert download.status_code == 404


@pytest.mark.django_db
def test_model_artifacts_of_a_version_without_files(client, experiment, artifact_storage):
    model = make_model(experiment)

    response = client.get(f"/models/{model.model_id}/artifacts/")

    assert response.status_code == 200
    assert "No artifacts stored for this version" in response.content.decode()


@pytest.mark.django_db
def test_model_list_shows_every_version_of_one_name_on_request(client, experiment, monkeypatch):
    monkeypatch.setattr(logged_models, "VERSIONS_PER_NAME", 2)
    for hour in range(5):
        make_model(experiment, created_at=T0 + timedelta(hours=hour))
    make_model(experiment, name="billing-agent")

    overview = client.get("/models/").content.decode()
    response = client.get("/models/", {"name": "support-agent"})

    assert 'href="?name=support-agent">Show all versions of support-agent</a>' in overview
    (group,) = response.context["groups"]
    assert [v.number for v in group.versions] == [5, 4, 3, 2, 1]


# --- /models/ grouped by registered model, experiment or logged-model name ------------------


def register(name, *models, aliases=None):
    registered = RegisteredModel.objects.create(name=name, aliases=aliases or {})
    for number, model in enumerate(models, start=1):
        ModelVersion.objects.create(
            registered_model=registered, version=number, model_id=model.model_id
        )
    return registered


def commit_named_versions(experiment, commits=("aaa1111", "bbb2222")):
    """Seed 002's pattern: the commit in each version's name, and in its git tag."""
    return [
        make_model(
            experiment,
            name=f"customer_support_agent-{commit}",
            created_at=T0 + timedelta(hours=n),
            tags={"mlflow.source.git.commit": commit + "0" * 33},
        )
        for n, commit in enumerate(commits)
    ]


@pytest.mark.django_db
def test_model_list_shows_commit_named_versions_as_one_history_of_their_experiment(
    client, experiment
):
    first, second = commit_named_versions(experiment)

    response = client.get("/models/")

    assert response.context["by"] == "experiment"
    (group,) = response.context["groups"]
    assert (group.name, group.version_count) == ("support", 2)
    assert [v.model_id for v in group.versions] == [second.model_id, first.model_id]
    assert [v.number_label for v in group.versions] == ["2", "1"]  # its place in the app
    html = response.content.decode()
    assert "chosen because each logged-model name has one version" in html
    assert "customer_support_agent-bbb2222 v1" in html
    assert ">bbb2222<" in html and ">aaa1111<" in html  # the commit of each


@pytest.mark.django_db
def test_model_list_shows_registered_versions_under_their_registered_name_with_aliases(
    client, experiment
):
    first = make_model(experiment, name="agent", created_at=T0)
    second = make_model(experiment, name="agent", created_at=T0 + timedelta(hours=1))
    register("support_chat_agent", first, second, aliases={"champion": 2})

    response = client.get("/models/")

    assert response.context["by"] == "registered"
    (group,) = response.context["groups"]
    assert group.name == "support_chat_agent"
    assert [(v.model_id, v.number_label) for v in group.versions] == [
        (second.model_id, "2"),
        (first.model_id, "1"),
    ]
    html = response.content.decode()
    assert "@champion → v2" in html
    assert "chosen because every version is registered" in html
    assert "agent v2" in html  # the logged model each registry version is


@pytest.mark.django_db
def test_model_list_groups_as_asked_whatever_the_default(client, experiment):
    other = Experiment.objects.create(name="billing")
    _, second = commit_named_versions(experiment)
    make_model(other, name="billing-agent")
    register("support_chat_agent", second)

    def groups(by):
        response = client.get("/models/", {"by": by})
        assert response.context["by"] == by
        assert "chosen because" not in response.content.decode()
        return [(g.name, len(g.versions)) for g in response.context["groups"]]

    assert groups("name") == [
        ("billing-agent", 1),
        ("customer_support_agent-bbb2222", 1),
        ("customer_support_agent-aaa1111", 1),
    ]
    assert groups("experiment") == [("billing", 1), ("support", 2)]
    assert groups("registered") == [("support_chat_agent", 1)]


@pytest.mark.django_db
def test_model_list_lists_one_group_in_full_in_each_grouping(client, experiment, monkeypatch):
    monkeypatch.setattr(logged_models, "VERSIONS_PER_NAME", 1)
    other = Experiment.objects.create(name="billing")
    versions = commit_named_versions(experiment, ("aaa1111", "bbb2222", "ccc3333"))
    make_model(other, name="billing-agent")
    register("support_chat_agent", *versions)

    overview = client.get("/models/", {"by": "experiment"}).content.decode()
    by_experiment = client.get("/models/", {"by": "experiment", "group": str(experiment.pk)})
    by_registry = client.get("/models/", {"by": "registered", "group": "support_chat_agent"})

    assert f'href="?by=experiment&amp;group={experiment.pk}"' in overview
    (group,) = by_experiment.context["groups"]
    assert len(group.versions) == 3
    (group,) = by_registry.context["groups"]
    assert [v.number_label for v in group.versions] == ["3", "2", "1"]


@pytest.mark.django_db
def test_model_list_searches_by_registered_model_and_alias(client, experiment):
    first = make_model(experiment, name="agent", created_at=T0)
    second = make_model(experiment, name="agent", created_at=T0 + timedelta(hours=1))
    make_model(experiment, name="other")
    register("support_chat_agent", first, second, aliases={"champion": 1})

    def found(q):
        response = client.get("/models/", {"q": q, "by": "name"})
        assert response.status_code == 200
        return sorted(v.model_id for g in response.context["groups"] for v in g.versions)

    assert found("model = 'support_chat_agent'") == sorted([first.model_id, second.model_id])
    assert found("model = 'support_chat_agent@champion'") == [first.model_id]
    assert found("model = 'support_chat_agent/2'") == [second.model_id]
    assert found("model LIKE 'support%'") == sorted([first.model_id, second.model_id])
    assert len(found("model != 'support_chat_agent'")) == 1
    # MLflow's `name` stays the logged model's name; the page says what was meant.
    assert found("name = 'support_chat_agent'") == []
    html = client.get("/models/", {"q": "name = 'support_chat_agent'"}).content.decode()
    assert (
        "<strong>support_chat_agent</strong> is a registered model: "
        '<a href="?by=registered&amp;q=model%20%3D%20%27support_chat_agent%27">'
    ) in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [{"by": "bogus"}, {"by": "experiment", "group": "not-a-number"}, {"q": "model > 'a'"}],
)
def test_model_list_explains_a_bad_grouping_inline(client, experiment, params):
    make_model(experiment)

    response = client.get("/models/", params)

    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert response.context["groups"] == []


@pytest.mark.django_db
def test_model_list_escapes_registered_and_experiment_names(client):
    experiment = Experiment.objects.create(name=XSS)
    model = make_model(experiment, name="agent")
    register(XSS, model, aliases={XSS: 1})

    for params in ({"by": "registered"}, {"by": "experiment"}, {"q": f"name = '{XSS}'"}):
        html = client.get("/models/", params).content.decode()
        assert XSS_ESCAPED in html
        assert XSS not in html


@pytest.mark.django_db
@pytest.mark.parametrize(("by", "queries"), [("experiment", 5), ("registered", 6), ("", 7)])
def test_model_list_queries_do_not_grow_with_rows_in_any_grouping(
    client, experiment, django_assert_num_queries, by, queries
):
    for i in range(3):
        versions = [
            make_model(experiment, name=f"agent-{i}-{hour}", created_at=T0 + timedelta(hours=hour))
            for hour in range(3)
        ]
        for hour, version in enumerate(versions):
            make_trace(experiment, i * 10 + hour, model_id=version.model_id)
            Metric.objects.create(logged_model=version, key="accuracy", value=0.5, timestamp_ms=1)
        register(f"registered-{i}", *versions, aliases={"champion": 1})

    # experiment: groups, versions, trace counts, registry labels, metrics; registered: its
    # three queries instead of two; the default adds the shape that chooses the grouping.
    with django_assert_num_queries(queries):
        response = client.get("/models/", {"by": by} if by else {})

    assert sum(len(g.versions) for g in response.context["groups"]) == 9


# --- a version's history on its page ---------------------------------------------------------


def history(client, model) -> list[tuple[str, int]]:
    response = client.get(f"/models/{model.model_id}/")
    assert response.status_code == 200
    return [(v.model_id, v.history_number) for v in response.context["history"].versions]


@pytest.mark.django_db
def test_version_page_lists_the_registered_models_versions_by_registry_number(client, experiment):
    # Seed 004: logged as "agent" / "model", registered as one name.
    first = make_model(experiment, name="agent", created_at=T0)
    second = make_model(experiment, name="model", created_at=T0 + timedelta(hours=1))
    make_model(experiment, name="agent", created_at=T0 + timedelta(hours=2))  # not registered
    register("support_chat_agent", first, second, aliases={"champion": 2})

    assert history(client, first) == [(second.model_id, 2), (first.model_id, 1)]
    html = client.get(f"/models/{first.model_id}/").content.decode()
    assert "Versions of support_chat_agent" in html
    assert 'href="/models/?by=registered&amp;group=support_chat_agent"' in html
    assert '<span class="version-tag">v2</span>' in html


@pytest.mark.django_db
def test_version_page_lists_commit_named_versions_as_their_experiments_history(client):
    # Seed 002: a name per commit; the app is the experiment.
    app, other = Experiment.objects.create(name="support-app"), Experiment.objects.create(name="b")
    old = make_model(app, name="customer_support_agent-aaa111", created_at=T0)
    new = make_model(app, name="customer_support_agent-bbb222", created_at=T0 + timedelta(hours=1))
    make_model(other, name="customer_support_agent-ccc333")

    assert history(client, old) == [(new.model_id, 2), (old.model_id, 1)]
    html = client.get(f"/models/{old.model_id}/").content.decode()
    assert "Versions of support-app" in html
    assert f'href="/models/?by=experiment&amp;group={app.pk}"' in html


@pytest.mark.django_db
def test_version_page_lists_the_versions_of_its_name_when_names_repeat(client, experiment):
    first = make_model(experiment, created_at=T0)
    second = make_model(experiment, created_at=T0 + timedelta(hours=1))
    make_model(experiment, name="billing-agent", created_at=T0 + timedelta(hours=2))

    assert history(client, first) == [(second.model_id, 2), (first.model_id, 1)]
    assert "Versions of support-agent" in client.get(f"/models/{first.model_id}/").content.decode()
