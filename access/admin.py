from django.contrib import admin

from access.models import ExperimentGrant, UserRole


@admin.register(UserRole)
class UserRoleAdmin(admin.ModelAdmin):
    list_display = ["user", "role"]
    list_filter = ["role"]


@admin.register(ExperimentGrant)
class ExperimentGrantAdmin(admin.ModelAdmin):
    list_display = ["experiment", "user", "group", "level"]
    list_filter = ["level"]
