from __future__ import annotations

from django.contrib import admin

from webapp.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "hint", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope"]
    search_fields = ["name", "user__username", "hint"]
    # The hash is useless to a person and must not be edited into another token's.
    readonly_fields = ["hint", "token_hash", "created_at", "last_used_at"]
