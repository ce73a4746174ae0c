from __future__ import annotations

import pytest

from tests.conftest import make_celery_app
from webapp import health


@pytest.fixture
def use_app(monkeypatch):
    """Point /healthz at a given (real) Celery app."""

    def use(app):
        monkeypatch.setattr(health, "celery_app", app)
        return app

    return use


@pytest.mark.django_db
def test_it_is_ok_with_the_embedded_worker(client, use_app, embedded_worker):
    use_app(embedded_worker)

    response = client.get("/healthz")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ok"] is True
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["transport"] == "memory"
    assert body["checks"]["worker"]["workers"][0].startswith("embedded-")


@pytest.mark.django_db
@pytest.mark.services
def test_it_is_ok_with_a_worker_process_on_redis(client, use_app, redis_worker):
    app, queue = redis_worker
    use_app(app)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert any(queue in name for name in response.json()["checks"]["worker"]["workers"])


@pytest.mark.django_db
def test_it_answers_503_when_the_broker_is_stopped(client, use_app):
    # Nothing listens on port 1: the same refusal a stopped Redis gives.
    app = use_app(make_celery_app("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"))

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is False
    assert "Error" in body["checks"]["broker"]["error"]
    assert body["checks"]["worker"] == {"ok": False, "error": "broker unreachable"}
    app.close()


@pytest.mark.django_db
def test_it_answers_503_when_no_worker_listens(client, use_app, memory_celery_app):
    use_app(memory_celery_app)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is True
    assert "no worker answered" in response.json()["checks"]["worker"]["error"]


def test_it_refuses_other_methods(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_strangers_see_the_status_alone_when_auth_is_on(client, settings, use_app, embedded_worker):
    settings.SPYGLASS_AUTH = True
    use_app(embedded_worker)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert b"embedded-" not in response.content


@pytest.mark.django_db
def test_a_signed_in_user_or_a_token_sees_the_details(client, settings, use_app, embedded_worker):
    from django.contrib.auth.models import User

    from webapp.models import ApiToken

    settings.SPYGLASS_AUTH = True
    use_app(embedded_worker)
    alice = User.objects.create_user("alice", password="wonder-land-42")
    _, token = ApiToken.issue(alice, "monitoring")

    by_token = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {token}")
    client.force_login(alice)
    by_session = client.get("/healthz")

    for response in (by_token, by_session):
        workers = response.json()["checks"]["worker"]["workers"]
        assert workers[0].startswith("embedded-")


@pytest.mark.django_db
def test_a_stranger_learns_only_that_it_is_down(client, settings, use_app):
    settings.SPYGLASS_AUTH = True
    app = use_app(make_celery_app("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"))

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"ok": False}
    app.close()
