"""Conversations belong to whoever started them: nobody else sees or touches them, admins
excepted."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from access.models import Role, UserRole
from playground.models import Agent, Conversation, Message, Run, RunStatus
from tests.playground.conftest import wait_until_finished

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice")


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user("bob")


@pytest.fixture
def charlie(db) -> User:
    """An admin."""
    charlie = User.objects.create_user("charlie")
    UserRole.objects.create(user=charlie, role=Role.ADMIN)
    return charlie


@pytest.fixture
def agent(db) -> Agent:
    return Agent.objects.create(
        name="echo", kind="builtin", config={"agent": "echo", "word_delay_ms": 0}
    )


def chat_of(owner: User | None, agent: Agent, title: str) -> Conversation:
    conversation = Conversation.objects.create(title=title, owner=owner)
    conversation.agents.add(agent)
    return conversation


def answered(conversation: Conversation, agent: Agent, status: str = RunStatus.DONE) -> Run:
    message = Message.objects.create(conversation=conversation, content="hello")
    return Run.objects.create(
        conversation=conversation,
        message=message,
        agent=agent,
        status=status,
        content="hi there",
        trace_id="tr-" + "a" * 32,
    )


@pytest.mark.django_db(transaction=True)
def test_a_chat_belongs_to_who_started_it(client, auth_on, alice, worker, echo_agent):
    client.force_login(alice)

    response = client.post("/playground/new", {"agents": [echo_agent.pk], "message": "hi"})

    conversation = Conversation.objects.get()
    assert response.status_code == 302
    assert conversation.owner == alice
    wait_until_finished(conversation.runs.get().pk)


@pytest.mark.django_db
def test_bob_cannot_open_alices_conversation(client, auth_on, alice, bob, agent):
    mine = chat_of(alice, agent, "alice's secret plan")
    run = answered(mine, agent)
    client.force_login(bob)

    assert client.get(f"/playground/c/{mine.pk}/").status_code == 404
    assert client.get(f"/playground/c/{mine.pk}/", **HX).status_code == 404
    assert client.get(f"/playground/runs/{run.pk}/").status_code == 404
    assert client.get(f"/playground/runs/{run.pk}/trace").status_code == 404
    assert "alice&#x27;s secret plan" not in client.get("/playground/").content.decode()

    client.force_login(alice)
    assert client.get(f"/playground/c/{mine.pk}/").status_code == 200
    assert client.get(f"/playground/runs/{run.pk}/").status_code == 200
    assert "alice&#x27;s secret plan" in client.get("/playground/").content.decode()


@pytest.mark.django_db
def test_bob_cannot_send_into_or_cancel_in_alices_conversation(client, auth_on, alice, bob, agent):
    mine = chat_of(alice, agent, "alice's")
    run = answered(mine, agent, status=RunStatus.QUEUED)
    client.force_login(bob)

    assert client.post(f"/playground/c/{mine.pk}/send", {"message": "mine now"}).status_code == 404
    assert client.post(f"/playground/runs/{run.pk}/cancel", **HX).status_code == 404

    assert list(Message.objects.values_list("content", flat=True)) == ["hello"]
    assert Run.objects.get().status == RunStatus.QUEUED


@pytest.mark.django_db
def test_the_conversation_list_shows_only_the_callers_own(client, auth_on, alice, bob, agent):
    chat_of(alice, agent, "alice-one")
    chat_of(bob, agent, "bob-one")
    chat_of(None, agent, "made-with-auth-off")
    client.force_login(bob)

    page = client.get("/playground/").content.decode()

    assert "bob-one" in page
    assert "alice-one" not in page and "made-with-auth-off" not in page


@pytest.mark.django_db
def test_an_admin_sees_and_opens_every_conversation(client, auth_on, alice, charlie, agent):
    mine = chat_of(alice, agent, "alice-one")
    run = answered(mine, agent)
    chat_of(None, agent, "made-with-auth-off")
    client.force_login(charlie)

    page = client.get("/playground/").content.decode()

    assert "alice-one" in page and "by alice" in page and "made-with-auth-off" in page
    assert client.get(f"/playground/c/{mine.pk}/").status_code == 200
    assert client.get(f"/playground/runs/{run.pk}/trace").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_with_auth_off_a_chat_has_no_owner_and_everyone_sees_it(client, worker, echo_agent):
    client.post("/playground/new", {"agents": [echo_agent.pk], "message": "hi"})

    conversation = Conversation.objects.get()
    assert conversation.owner is None
    assert client.get(f"/playground/c/{conversation.pk}/").status_code == 200
    wait_until_finished(conversation.runs.get().pk)


@pytest.mark.django_db
def test_alice_renames_her_conversation(client, auth_on, alice, agent):
    mine = chat_of(alice, agent, "first words")
    client.force_login(alice)

    response = client.post(f"/playground/c/{mine.pk}/rename", {"title": "  Scones plan  "})

    assert response.status_code == 302
    assert Conversation.objects.get().title == "Scones plan"
    page = client.get(f"/playground/c/{mine.pk}/").content.decode()
    assert "<h1>Scones plan</h1>" in page and "Rename or delete" in page


@pytest.mark.django_db
def test_an_empty_title_is_refused_inline(client, auth_on, alice, agent):
    mine = chat_of(alice, agent, "kept")
    client.force_login(alice)

    response = client.post(f"/playground/c/{mine.pk}/rename", {"title": "   "})

    assert response.status_code == 400
    assert 'role="alert">This field is required.' in response.content.decode()
    assert Conversation.objects.get().title == "kept"


@pytest.mark.django_db
def test_alice_deletes_her_conversation_with_its_answers(client, auth_on, alice, agent):
    mine = chat_of(alice, agent, "to go")
    answered(mine, agent)
    client.force_login(alice)

    response = client.post(f"/playground/c/{mine.pk}/delete")

    assert response.status_code == 302 and response["Location"] == "/playground/"
    assert not Conversation.objects.exists()
    assert not Run.objects.exists() and not Message.objects.exists()
    assert Agent.objects.filter(pk=agent.pk).exists()


@pytest.mark.django_db
def test_bob_cannot_rename_or_delete_alices_conversation(client, auth_on, alice, bob, agent):
    mine = chat_of(alice, agent, "alice's")
    client.force_login(bob)

    assert client.post(f"/playground/c/{mine.pk}/rename", {"title": "bob's"}).status_code == 404
    assert client.post(f"/playground/c/{mine.pk}/delete").status_code == 404

    assert Conversation.objects.get().title == "alice's"


@pytest.mark.django_db
def test_an_admin_reads_but_does_not_rename_or_delete_others_conversations(
    client, auth_on, alice, charlie, agent
):
    mine = chat_of(alice, agent, "alice's")
    client.force_login(charlie)

    assert "Rename or delete" not in client.get(f"/playground/c/{mine.pk}/").content.decode()
    assert client.post(f"/playground/c/{mine.pk}/rename", {"title": "x"}).status_code == 403
    assert client.post(f"/playground/c/{mine.pk}/delete").status_code == 403

    assert Conversation.objects.get().title == "alice's"


@pytest.mark.django_db
def test_with_logins_off_the_local_user_renames_and_deletes_its_chats(client, agent):
    local = chat_of(None, agent, "local")

    assert client.post(f"/playground/c/{local.pk}/rename", {"title": "renamed"},
                       **HX).status_code == 200  # fmt: skip
    assert Conversation.objects.get().title == "renamed"
    response = client.post(f"/playground/c/{local.pk}/delete", **HX)
    assert response["HX-Redirect"] == "/playground/"
    assert not Conversation.objects.exists()


def test_rename_and_delete_take_only_post(client, db, agent):
    local = chat_of(None, agent, "local")

    assert client.get(f"/playground/c/{local.pk}/rename").status_code == 405
    assert client.get(f"/playground/c/{local.pk}/delete").status_code == 405
