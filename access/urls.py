from django.urls import path

from access import views

app_name = "access"

urlpatterns = [
    path("", views.users, name="users"),
    path("users/<int:pk>/", views.user, name="user"),
    path("users/<int:pk>/role", views.user_role, name="user-role"),
    path("users/<int:pk>/active", views.user_active, name="user-active"),
    path("users/<int:pk>/password", views.user_password, name="user-password"),
    path("groups/", views.groups, name="groups"),
    path("groups/<int:pk>/", views.group, name="group"),
    path("groups/<int:pk>/members", views.group_members, name="group-members"),
    path(
        "groups/<int:pk>/members/<int:user_pk>/remove",
        views.group_member_remove,
        name="group-member-remove",
    ),
    path("groups/<int:pk>/delete", views.group_delete, name="group-delete"),
    path("experiments/", views.experiments, name="experiments"),
    path("experiments/<int:pk>/", views.experiment, name="experiment"),
    path("experiments/<int:pk>/audience", views.experiment_audience, name="experiment-audience"),
    path("experiments/<int:pk>/grants/<int:grant_pk>/", views.grant, name="grant"),
    path(
        "experiments/<int:pk>/grants/<int:grant_pk>/delete", views.grant_delete, name="grant-delete"
    ),
]
