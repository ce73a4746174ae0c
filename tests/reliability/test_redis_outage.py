"""Redis down under a real gunicorn (production settings, Redis as broker and result
backend): a playground message is saved and the page says at once why no answer comes."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.parse

import pytest

from tests.reliability.conftest import REPO, free_port, query, server_env

pytestmark = pytest.mark.services


def test_a_message_sent_while_redis_is_down_is_answered_with_the_reason_within_2_s(
    tmp_path, database_url, gunicorn
):
    redis_down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = server_env(tmp_path, database_url, REDIS_URL=redis_down)
    code = (
        "from playground.models import Agent, Conversation;"
        "a = Agent.objects.create(name='echo', kind='builtin', config={'agent': 'echo'});"
        "c = Conversation.objects.create(title='t'); c.agents.set([a]); print(c.pk)"
    )
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, env=env,
                         check=True, capture_output=True, text=True, timeout=120)  # fmt: skip
    pk = int(out.stdout.strip().splitlines()[-1])
    server = gunicorn(env)
    status, headers, page = server.request("GET", f"/playground/c/{pk}/")
    assert status == 200
    cookie = headers["Set-Cookie"].split(";")[0]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()

    started = time.monotonic()
    status, _, page = server.request(
        "POST", f"/playground/c/{pk}/send",
        urllib.parse.urlencode({"message": "anyone there?", "csrfmiddlewaretoken": token}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
         "HX-Request": "true", "Referer": f"http://127.0.0.1:{server.port}/playground/c/{pk}/"},
    )  # fmt: skip
    took = time.monotonic() - started

    assert status == 200, page[:3000]
    assert took < 2.0, f"the page took {took:.1f} s while Redis was down"
    assert b"broker is unreachable" in page
    assert b"anyone there?" in page  # the message is kept, ready to send again
    assert query(database_url, "SELECT status FROM playground_run") == [("failed",)]
