"""The caller's tokens, under settings/tokens/ without a namespace ({% url 'tokens' %})."""

from django.urls import path

from access import tokens

urlpatterns = [
    path("", tokens.tokens, name="tokens"),
    path("<int:token_id>/revoke", tokens.revoke_token, name="revoke-token"),
]
