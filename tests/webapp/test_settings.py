"""Settings that follow the environment, read in a fresh process as a deployment would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def settings_under(env: dict[str, str], *names: str) -> dict:
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"values = {{n: getattr(settings, n, None) for n in {list(names)!r}}}; "
        "print(json.dumps(values, default=str))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SPYGLASS_HTTPS", "SECURE_"))}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**base, "DJANGO_SETTINGS_MODULE": "webapp.settings", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_https_turns_on_hsts_secure_cookies_and_the_redirect():
    names = ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
             "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER")  # fmt: skip
    served = settings_under({"SPYGLASS_HTTPS": "1", "SPYGLASS_BEHIND_PROXY": "1"}, *names)
    plain = settings_under({}, *names)

    assert served["SESSION_COOKIE_SECURE"] and served["CSRF_COOKIE_SECURE"]
    assert served["SECURE_HSTS_SECONDS"] == 31_536_000
    assert served["SECURE_SSL_REDIRECT"] is True
    assert served["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert not plain["SESSION_COOKIE_SECURE"]
    assert not plain["SECURE_HSTS_SECONDS"]


def test_artifacts_can_live_on_s3_compatible_storage_by_setting_alone():
    env = {
        "SPYGLASS_ARTIFACT_STORAGE": "s3",
        "SPYGLASS_S3_BUCKET": "spyglass-artifacts",
        "SPYGLASS_S3_ENDPOINT_URL": "http://minio.internal:9000",
    }
    storage = settings_under(env, "STORAGES")["STORAGES"]["default"]

    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    assert storage["OPTIONS"]["bucket_name"] == "spyglass-artifacts"
    assert storage["OPTIONS"]["endpoint_url"] == "http://minio.internal:9000"
