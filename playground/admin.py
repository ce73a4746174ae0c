from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from playground.models import Agent, Conversation, Message, Run


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    # Keys are set, replaced and removed on /playground/agents/; the admin only says whether
    # one is stored (AgentSecret is not registered). Its config is checked again at call time.
    list_display = ["name", "kind", "model_id", "api_key_stored", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "model_id"]
    readonly_fields = ["api_key_stored"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        return super().get_queryset(request).for_list()

    @admin.display(boolean=True, description="API key stored")
    def api_key_stored(self, agent: Agent) -> bool:
        return bool(getattr(agent, "has_api_key", False))


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["role", "content", "custom_inputs", "created_at"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "updated_at"]
    filter_horizontal = ["agents"]
    raw_id_fields = ["owner"]
    inlines = [MessageInline]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["pk", "agent", "status", "latency_ms", "total_tokens", "trace_id", "created_at"]
    list_filter = ["status", "agent"]
    raw_id_fields = ["conversation", "message"]
    readonly_fields = ["seq", "task_id", "heartbeat_at"]
