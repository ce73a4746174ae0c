from django.urls import path

from playground import views

app_name = "playground"

urlpatterns = [
    # ?replay=<trace_id> or ?model=<model_id> prefill a new chat from what was logged.
    path("", views.index, name="index"),
    path("new", views.new_chat, name="new-chat"),
    # ?session=<id>&experiment=<pk>: replay a logged session's user turns with other agents.
    path("replay/", views.replay_session, name="replay-session"),
    path("replays/<int:pk>/cancel", views.cancel_replay, name="replay-cancel"),
    path("c/<int:pk>/", views.conversation, name="conversation"),
    path("c/<int:pk>/send", views.send, name="send"),
    path("c/<int:pk>/rename", views.rename_conversation, name="conversation-rename"),
    path("c/<int:pk>/delete", views.delete_conversation, name="conversation-delete"),
    path("runs/<int:pk>/", views.run, name="run"),
    path("runs/<int:pk>/cancel", views.cancel, name="cancel"),
    path("runs/<int:pk>/trace", views.run_trace, name="run-trace"),
    path("agents/", views.agents, name="agents"),
    path("agents/<int:pk>/", views.agent, name="agent"),
    path("agents/<int:pk>/delete", views.delete_agent, name="agent-delete"),
    path("agents/<int:pk>/check", views.check_agent, name="agent-check-start"),
    path("agents/<int:pk>/check/", views.agent_check, name="agent-check"),
]
