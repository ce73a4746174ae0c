"""The MLflow model registry REST API with Django's test client: each endpoint, the wire shapes
the mlflow client reads, bad input (MLflow error JSON, nothing stored changes), version
numbering under concurrent creates, and the registry line on the model page. The real client
is in tests/interop/test_registry.py."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import Client

from tests.rows import make_model
from tracking.models import LoggedModel, ModelVersion, RegisteredModel, Run
from webapp.models import ApiToken

INVALID = (400, "INVALID_PARAMETER_VALUE")
MISSING = (404, "RESOURCE_DOES_NOT_EXIST")


def send(client, path: str, body: Any, method: str = "post"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return getattr(client, method)(path, data=data, content_type="application/json")


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error_code"]


def stored() -> list[tuple]:
    """Everything the registry holds, to show that a refused request changed nothing."""
    models = RegisteredModel.objects.order_by("pk").values_list(
        "name", "description", "tags", "aliases", "updated_at"
    )
    versions = ModelVersion.objects.order_by("pk").values_list(
        "registered_model__name", "version", "source", "description", "tags", "current_stage"
    )
    return [*models, *versions]


def register(name: str = "support", **fields) -> RegisteredModel:
    return RegisteredModel.objects.create(name=name, **fields)


def add_version(model: RegisteredModel, version: int, **fields) -> ModelVersion:
    return ModelVersion.objects.create(registered_model=model, version=version, **fields)


@pytest.fixture
def logged(experiment) -> LoggedModel:
    run = Run.objects.create(experiment=experiment, name="train")
    model = make_model(experiment, source_run=run)
    model.artifact_location = f"mlflow-artifacts:/{experiment.pk}/models/{model.model_id}/artifacts"
    model.save()
    return model


# --- Registered models -----------------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_and_gets_a_registered_model(client):
    response = send(
        client,
        "/api/2.0/mlflow/registered-models/create",
        {"name": "support", "description": "answers", "tags": [{"key": "team", "value": "cs"}]},
    )

    assert response.status_code == 200
    created = response.json()["registered_model"]
    assert created["name"] == "support"
    assert isinstance(created["creation_timestamp"], int)
    assert created["creation_timestamp"] > 1_700_000_000_000  # milliseconds
    assert created["tags"] == [{"key": "team", "value": "cs"}]
    got = client.get("/api/2.0/mlflow/registered-models/get", {"name": "support"}).json()
    assert got["registered_model"]["description"] == "answers"


@pytest.mark.django_db
def test_creating_a_name_twice_is_resource_already_exists(client):
    register(description="first")
    before = stored()

    response = send(client, "/api/2.0/mlflow/registered-models/create", {"name": "support"})

    # The client catches exactly this code and goes on to create a version.
    assert error_of(response) == (400, "RESOURCE_ALREADY_EXISTS")
    assert stored() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": 7},
        {"name": ["a"]},
        {"name": "a/b"},
        {"name": "a:b"},
        {"name": "nul\x00"},
        {"name": "x" * 10_000},
        {"name": "ok", "tags": "team=cs"},
        {"name": "ok", "tags": [{"key": "", "value": "v"}]},
        {"name": "ok", "tags": [{"key": "k", "value": 3}]},
        {"name": "ok", "description": {"a": 1}},
        "not json",
        "[1, 2]",
    ],
)
def test_a_bad_create_is_invalid_parameter_value_and_stores_nothing(client, body):
    response = send(client, "/api/2.0/mlflow/registered-models/create", body)

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert stored() == []


@pytest.mark.django_db
def test_an_unknown_name_is_resource_does_not_exist_everywhere(client):
    register()
    before = stored()
    calls = [
        ("get", "/api/2.0/mlflow/registered-models/get", {"name": "nope"}),
        ("patch", "/api/2.0/mlflow/registered-models/update", {"name": "nope"}),
        ("post", "/api/2.0/mlflow/registered-models/rename", {"name": "nope", "new_name": "x"}),
        ("delete", "/api/2.0/mlflow/registered-models/delete", {"name": "nope"}),
        ("post", "/api/2.0/mlflow/registered-models/set-tag", {"name": "nope", "key": "k"}),
        ("delete", "/api/2.0/mlflow/registered-models/delete-tag", {"name": "nope", "key": "k"}),
        ("post", "/api/2.0/mlflow/model-versions/create", {"name": "nope", "source": "s3://b/m"}),
        ("get", "/api/2.0/mlflow/model-versions/get", {"name": "support", "version": "9"}),
        ("get", "/api/2.0/mlflow/registered-models/alias", {"name": "support", "alias": "gone"}),
        ("post", "/api/2.0/mlflow/registered-models/get-latest-versions", {"name": "nope"}),
    ]
    for method, path, body in calls:
        response = client.get(path, body) if method == "get" else send(client, path, body, method)
        assert error_of(response) == (404, "RESOURCE_DOES_NOT_EXIST"), path
    assert stored() == before


@pytest.mark.django_db
def test_it_updates_renames_and_deletes_with_its_versions(client):
    model = register()
    add_version(model, 1)
    register("other")

    updated = send(
        client,
        "/api/2.0/mlflow/registered-models/update",
        {"name": "support", "description": "new words"},
        "patch",
    )
    taken = send(
        client, "/api/2.0/mlflow/registered-models/rename", {"name": "support", "new_name": "other"}
    )
    renamed = send(
        client, "/api/2.0/mlflow/registered-models/rename", {"name": "support", "new_name": "help"}
    )

    assert updated.json()["registered_model"]["description"] == "new words"
    assert error_of(taken) == (400, "RESOURCE_ALREADY_EXISTS")
    assert renamed.json()["registered_model"]["name"] == "help"
    assert ModelVersion.objects.get().registered_model.name == "help"

    deleted = send(client, "/api/2.0/mlflow/registered-models/delete", {"name": "help"}, "delete")

    assert deleted.status_code == 200
    assert list(RegisteredModel.objects.values_list("name", flat=True)) == ["other"]
    assert ModelVersion.objects.count() == 0


@pytest.mark.django_db
def test_it_sets_and_deletes_registered_model_tags(client):
    register(tags={"old": "1"})

    send(
        client,
        "/api/2.0/mlflow/registered-models/set-tag",
        {"name": "support", "key": "team", "value": "cs"},
    )
    send(
        client,
        "/api/2.0/mlflow/registered-models/delete-tag",
        {"name": "support", "key": "old"},
        "delete",
    )
    # A tag the model does not have: not an error, as in MLflow's registry.
    missing = send(
        client,
        "/api/2.0/mlflow/registered-models/delete-tag",
        {"name": "support", "key": "never"},
        "delete",
    )

    assert missing.status_code == 200
    assert RegisteredModel.objects.get().tags == {"team": "cs"}


@pytest.mark.django_db
def test_search_filters_by_name_like_and_ilike_and_skips_prompts(client):
    for name in ("support-agent", "Support-Bot", "billing"):
        register(name)
    register("a-prompt", tags={"mlflow.prompt.is_prompt": "true"})

    def names(**params: Any) -> list[str]:
        response = client.get("/api/2.0/mlflow/registered-models/search", params)
        assert response.status_code == 200, response.json()
        return [m["name"] for m in response.json().get("registered_models", [])]

    # What the client adds to every search: models without the tag are not prompts.
    no_prompts = "tag.`mlflow.prompt.is_prompt` != 'true'"
    assert names(filter=no_prompts) == ["Support-Bot", "billing", "support-agent"]
    assert names(filter=f"name = 'billing' AND {no_prompts}") == ["billing"]
    assert names(filter="name LIKE '%agent%'") == ["support-agent"]
    assert names(filter="name ILIKE 'support%'") == ["Support-Bot", "support-agent"]
    assert names(filter="tags.`mlflow.prompt.is_prompt` = 'true'") == ["a-prompt"]


@pytest.mark.django_db
def test_search_orders_and_pages(client):
    for name in ("b", "c", "a"):
        register(name)

    first = client.get(
        "/api/2.0/mlflow/registered-models/search", {"order_by": "name DESC", "max_results": 2}
    ).json()
    rest = client.get(
        "/api/2.0/mlflow/registered-models/search",
        {"order_by": "name DESC", "max_results": 2, "page_token": first["next_page_token"]},
    ).json()
    by_update = client.get(
        "/api/2.0/mlflow/registered-models/search",
        {"order_by": ["last_updated_timestamp DESC"]},
    ).json()

    assert [m["name"] for m in first["registered_models"]] == ["c", "b"]
    assert [m["name"] for m in rest["registered_models"]] == ["a"]
    assert "next_page_token" not in rest
    assert [m["name"] for m in by_update["registered_models"]] == ["a", "c", "b"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"page_token": "garbage"},
        {"max_results": "-1"},
        {"max_results": "many"},
        {"filter": "name = "},
        {"filter": "colour = 'red'"},
        {"filter": "name = 'a\x00'"},
        {"order_by": "colour"},
    ],
)
def test_a_bad_search_is_invalid_parameter_value(client, params):
    response = client.get("/api/2.0/mlflow/registered-models/search", params)

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.django_db
def test_search_lists_latest_versions_per_stage_in_a_fixed_number_of_queries(
    client, django_assert_max_num_queries
):
    for n in range(5):
        model = register(f"model-{n}")
        add_version(model, 1, current_stage="Production")
        add_version(model, 2)
        add_version(model, 3)

    with django_assert_max_num_queries(2):
        response = client.get("/api/2.0/mlflow/registered-models/search")

    latest = response.json()["registered_models"][0]["latest_versions"]
    assert sorted((v["version"], v["current_stage"]) for v in latest) == [
        ("1", "Production"),
        ("3", "None"),
    ]


# --- Aliases and latest versions -------------------------------------------------------------


@pytest.mark.django_db
def test_it_sets_gets_and_deletes_an_alias(client):
    model = register()
    add_version(model, 1)
    add_version(model, 2, source="s3://bucket/two")

    set_ = send(
        client,
        "/api/2.0/mlflow/registered-models/alias",
        {"name": "support", "alias": "champion", "version": "2"},
    )
    got = client.get(
        "/api/2.0/mlflow/registered-models/alias", {"name": "support", "alias": "champion"}
    )
    model_json = client.get("/api/2.0/mlflow/registered-models/get", {"name": "support"}).json()

    assert set_.status_code == 200
    assert got.json()["model_version"]["version"] == "2"
    assert got.json()["model_version"]["aliases"] == ["champion"]
    assert model_json["registered_model"]["aliases"] == [{"alias": "champion", "version": "2"}]

    send(
        client,
        "/api/2.0/mlflow/registered-models/alias",
        {"name": "support", "alias": "champion"},
        "delete",
    )

    assert RegisteredModel.objects.get().aliases == {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "support", "alias": "champion", "version": "7"}, 404),
        ({"name": "support", "alias": "champion", "version": "seven"}, 400),
        ({"name": "support", "alias": "champion"}, 400),
        ({"name": "support", "alias": "latest", "version": "1"}, 400),
        ({"name": "support", "alias": "v2", "version": "1"}, 400),
        ({"name": "support", "alias": "has space", "version": "1"}, 400),
        ({"name": "support", "alias": 5, "version": "1"}, 400),
    ],
)
def test_a_bad_alias_is_refused_and_changes_nothing(client, body, expected):
    add_version(register(), 1)
    before = stored()

    response = send(client, "/api/2.0/mlflow/registered-models/alias", body)

    assert response.status_code == expected
    assert response.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
    assert stored() == before


@pytest.mark.django_db
def test_get_latest_versions_per_stage_by_post_and_get(client):
    model = register()
    add_version(model, 1, current_stage="Production")
    add_version(model, 2, current_stage="Staging")
    add_version(model, 3)

    every = send(
        client, "/api/2.0/mlflow/registered-models/get-latest-versions", {"name": "support"}
    ).json()
    staging = client.get(
        "/api/2.0/mlflow/registered-models/get-latest-versions",
        {"name": "support", "stages": ["staging"]},
    ).json()
    bad = send(
        client,
        "/api/2.0/mlflow/registered-models/get-latest-versions",
        {"name": "support", "stages": ["Live"]},
    )

    assert [v["version"] for v in every["model_versions"]] == ["3", "2", "1"]
    assert [v["version"] for v in staging["model_versions"]] == ["2"]
    assert error_of(bad) == (400, "INVALID_PARAMETER_VALUE")


# --- Model versions --------------------------------------------------------------------------


@pytest.mark.django_db
def test_versions_are_numbered_per_model_and_sent_as_strings(client):
    register()
    register("other")

    numbers = [
        send(
            client,
            "/api/2.0/mlflow/model-versions/create",
            {"name": name, "source": "s3://bucket/model", "run_id": "a" * 32},
        ).json()["model_version"]["version"]
        for name in ("support", "support", "other", "support")
    ]

    assert numbers == ["1", "2", "1", "3"]
    got = client.get("/api/2.0/mlflow/model-versions/get", {"name": "support", "version": "2"})
    version = got.json()["model_version"]
    assert version["status"] == "READY"
    assert version["current_stage"] == "None"
    assert version["run_id"] == "a" * 32
    assert isinstance(version["last_updated_timestamp"], int)


@pytest.mark.django_db
def test_a_version_of_a_logged_model_downloads_from_it_and_is_recorded_on_it(client, logged):
    register()

    response = send(
        client,
        "/api/2.0/mlflow/model-versions/create",
        {"name": "support", "source": f"models:/{logged.model_id}", "model_id": logged.model_id},
    )
    uri = client.get(
        "/api/2.0/mlflow/model-versions/get-download-uri", {"name": "support", "version": "1"}
    )

    version = response.json()["model_version"]
    assert version["model_id"] == logged.model_id
    assert version["run_id"] == logged.source_run.run_id  # taken from the logged model
    assert uri.json() == {"artifact_uri": logged.artifact_location}
    logged.refresh_from_db()
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [{"name": "support", "version": 1}]


@pytest.mark.django_db
def test_a_version_of_a_version_inherits_its_model_and_location(client, logged):
    add_version(register(), 1, source=f"models:/{logged.model_id}", model_id=logged.model_id)
    register("copy")

    response = send(
        client,
        "/api/2.0/mlflow/model-versions/create",
        {"name": "copy", "source": "models:/support/1"},
    )
    uri = client.get(
        "/api/2.0/mlflow/model-versions/get-download-uri", {"name": "copy", "version": "1"}
    )

    assert response.json()["model_version"]["model_id"] == logged.model_id
    assert uri.json() == {"artifact_uri": logged.artifact_location}


@pytest.mark.django_db
def test_a_version_of_a_version_whose_logged_model_is_gone_is_still_made(client, logged):
    add_version(register(), 1, source=f"models:/{logged.model_id}", model_id=logged.model_id)
    logged.delete()

    response = send(
        client,
        "/api/2.0/mlflow/model-versions/create",
        {"name": "support", "source": "models:/support/1"},
    )

    assert response.json()["model_version"]["version"] == "2"
    assert response.json()["model_version"]["source"] == "models:/support/1"


@pytest.mark.django_db
def test_a_plain_source_is_its_own_download_uri(client):
    add_version(register(), 1, source="mlflow-artifacts:/1/abc/artifacts/model")

    uri = client.get(
        "/api/2.0/mlflow/model-versions/get-download-uri", {"name": "support", "version": "1"}
    )

    assert uri.json() == {"artifact_uri": "mlflow-artifacts:/1/abc/artifacts/model"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "support"}, INVALID),
        ({"name": "support", "source": 5}, INVALID),
        ({"name": "support", "source": "s3://b/" + "x" * 5000}, INVALID),
        ({"name": "support", "source": "s3://b/\x00"}, INVALID),
        ({"name": "support", "source": "models:/not-a-model"}, INVALID),
        ({"name": "support", "source": "s3://b", "model_id": "m-1"}, INVALID),
        ({"name": "support", "source": "s3://b", "tags": {"a": "b"}}, INVALID),
        ({"name": "support", "source": "s3://b", "model_id": "m-" + "0" * 32}, MISSING),
        ({"name": "support", "source": "models:/missing/1"}, MISSING),
        ({"name": "support", "source": "models:/support@nope"}, MISSING),
    ],
)
def test_a_bad_version_create_is_refused_and_stores_nothing(client, body, expected):
    register()
    before = stored()

    response = send(client, "/api/2.0/mlflow/model-versions/create", body)

    assert error_of(response) == expected
    assert stored() == before


@pytest.mark.django_db
def test_a_model_id_that_disagrees_with_the_source_is_refused(client, logged):
    register()
    other = make_model(logged.experiment)

    response = send(
        client,
        "/api/2.0/mlflow/model-versions/create",
        {"name": "support", "source": f"models:/{logged.model_id}", "model_id": other.model_id},
    )

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert ModelVersion.objects.count() == 0
    logged.refresh_from_db()
    assert "mlflow.modelVersions" not in logged.tags


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["abc", "0", "-1", "1.5", str(2**40), ""])
def test_a_bad_version_number_is_invalid_parameter_value(client, version):
    add_version(register(), 1)

    response = client.get(
        "/api/2.0/mlflow/model-versions/get", {"name": "support", "version": version}
    )

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.django_db
def test_it_updates_tags_and_deletes_a_version_with_its_aliases(client):
    model = register(aliases={"champion": 2, "old": 1})
    add_version(model, 1)
    add_version(model, 2)

    updated = send(
        client,
        "/api/2.0/mlflow/model-versions/update",
        {"name": "support", "version": "1", "description": "first try"},
        "patch",
    )
    send(
        client,
        "/api/2.0/mlflow/model-versions/set-tag",
        {"name": "support", "version": "1", "key": "validated", "value": "yes"},
    )
    send(
        client,
        "/api/2.0/mlflow/model-versions/set-tag",
        {"name": "support", "version": "1", "key": "scratch", "value": "x"},
    )
    send(
        client,
        "/api/2.0/mlflow/model-versions/delete-tag",
        {"name": "support", "version": "1", "key": "scratch"},
        "delete",
    )

    assert updated.json()["model_version"]["description"] == "first try"
    first = ModelVersion.objects.get(version=1)
    assert first.tags == {"validated": "yes"}

    send(
        client,
        "/api/2.0/mlflow/model-versions/delete",
        {"name": "support", "version": "2"},
        "delete",
    )

    assert list(ModelVersion.objects.values_list("version", flat=True)) == [1]
    assert RegisteredModel.objects.get().aliases == {"old": 1}


@pytest.mark.django_db
def test_search_versions_by_name_run_and_source(client):
    support, other = register(), register("other")
    add_version(support, 1, run_id="a" * 32, source="s3://bucket/one")
    add_version(support, 2, run_id="b" * 32, source="s3://bucket/two")
    add_version(other, 1, run_id="a" * 32, source="s3://elsewhere/one")

    def found(filter_: str) -> list[tuple[str, str]]:
        response = client.get("/api/2.0/mlflow/model-versions/search", {"filter": filter_})
        assert response.status_code == 200, response.json()
        return [(v["name"], v["version"]) for v in response.json().get("model_versions", [])]

    assert found("name = 'support'") == [("support", "2"), ("support", "1")]
    assert found(f"run_id = '{'a' * 32}'") == [("other", "1"), ("support", "1")]
    assert found("source_path LIKE 's3://bucket/%'") == [("support", "2"), ("support", "1")]
    assert found(f"run_id IN ('{'b' * 32}')") == [("support", "2")]
    assert found("") == [("other", "1"), ("support", "2"), ("support", "1")]
    bad = client.get("/api/2.0/mlflow/model-versions/search", {"filter": "flavour = 'x'"})
    assert error_of(bad) == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.django_db
def test_search_versions_pages_in_a_fixed_number_of_queries(client, django_assert_max_num_queries):
    model = register()
    for n in range(1, 6):
        add_version(model, n)

    with django_assert_max_num_queries(1):
        first = client.get("/api/2.0/mlflow/model-versions/search", {"max_results": 3}).json()
    rest = client.get(
        "/api/2.0/mlflow/model-versions/search", {"page_token": first["next_page_token"]}
    ).json()

    assert [v["version"] for v in first["model_versions"]] == ["5", "4", "3"]
    assert [v["version"] for v in rest["model_versions"]] == ["2", "1"]


@pytest.mark.django_db
def test_transition_stage_archives_the_others_on_request(client):
    model = register()
    add_version(model, 1, current_stage="Production")
    add_version(model, 2)

    response = send(
        client,
        "/api/2.0/mlflow/model-versions/transition-stage",
        {
            "name": "support",
            "version": "2",
            "stage": "production",
            "archive_existing_versions": True,
        },
    )

    assert response.json()["model_version"]["current_stage"] == "Production"
    stages = dict(ModelVersion.objects.values_list("version", "current_stage"))
    assert stages == {1: "Archived", 2: "Production"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"name": "support", "version": "1", "stage": "Live"},
        {"name": "support", "version": "1"},
        {"name": "support", "version": "1", "stage": "None", "archive_existing_versions": True},
        {"name": "support", "version": "1", "stage": "Staging", "archive_existing_versions": "y"},
    ],
)
def test_a_bad_transition_is_refused_and_changes_nothing(client, body):
    add_version(register(), 1)
    before = stored()

    response = send(client, "/api/2.0/mlflow/model-versions/transition-stage", body)

    assert error_of(response) == (400, "INVALID_PARAMETER_VALUE")
    assert stored() == before


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_share_a_version_number():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip(
            "threads cannot write to one in-memory SQLite test database at once "
            "(SPYGLASS_SQLITE_TEST_FILE=1 puts it in a file, as CI does)"
        )
    register()
    creators = 8
    barrier = threading.Barrier(creators)
    answers: list[tuple[int, str]] = []

    def create() -> None:
        try:
            barrier.wait()
            response = send(
                Client(),
                "/api/2.0/mlflow/model-versions/create",
                {"name": "support", "source": "s3://bucket/model"},
            )
            answers.append((response.status_code, response.json()["model_version"]["version"]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create) for _ in range(creators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(int(version) for _, version in answers) == list(range(1, creators + 1))
    assert {status for status, _ in answers} == {200}
    assert ModelVersion.objects.count() == creators


# --- Credentials -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_read_only_token_may_read_the_registry_but_not_write_it(client, settings):
    settings.SPYGLASS_AUTH = True
    _, token = ApiToken.issue(User.objects.create_user("alice"), "dashboards", scope="read")
    add_version(register(), 1)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    # MLflow sends get-latest-versions as a POST; it only reads.
    latest = client.post(
        "/api/2.0/mlflow/registered-models/get-latest-versions",
        data={"name": "support"},
        content_type="application/json",
        **auth,
    )
    search = client.get("/api/2.0/mlflow/registered-models/search", **auth)
    create = client.post(
        "/api/2.0/mlflow/registered-models/create",
        data={"name": "sneaky"},
        content_type="application/json",
        **auth,
    )
    stranger = client.get("/api/2.0/mlflow/registered-models/search")

    assert latest.status_code == 200
    assert search.status_code == 200
    assert error_of(create) == (403, "PERMISSION_DENIED")
    assert error_of(stranger) == (401, "UNAUTHENTICATED")
    assert list(RegisteredModel.objects.values_list("name", flat=True)) == ["support"]


# --- The model page --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_model_page_says_where_the_version_is_registered(
    client, logged, django_assert_max_num_queries
):
    support = register(aliases={"champion": 1})
    add_version(support, 1, model_id=logged.model_id)
    for n in range(2, 6):
        add_version(register(f"copy-{n}"), n, model_id=logged.model_id)
    add_version(support, 9, model_id="m-" + "f" * 32)  # another logged model's

    # Whatever the number of registrations (the page's own reads include its evaluations).
    with django_assert_max_num_queries(6):
        response = client.get(f"/models/{logged.model_id}/")

    html = response.content.decode()
    assert "Registered as support v1" in html
    assert "@champion" in html
    assert "Registered as copy-5 v5" in html
    assert "support v9" not in html


@pytest.mark.django_db
def test_the_model_page_of_an_unregistered_version_has_no_registry_line(client, logged):
    html = client.get(f"/models/{logged.model_id}/").content.decode()

    assert "Registered as" not in html
