from django.contrib import admin

from playground.models import Agent, Conversation, Message, Run


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "model_id", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "model_id"]


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
