from django.contrib import admin
from django.urls import include, path

from webapp import health, views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("", include("tracking.urls")),
    path("playground/", include("playground.urls")),
    path("admin/", admin.site.urls),
]
