from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from webapp import health, login

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("accounts/login/", login.login, name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/tokens/", include("access.token_urls")),
    path("settings/access/", include("access.urls")),
    # The MLflow REST API and OTLP paths are a public contract: clients call them literally.
    path("", include("tracking.public_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline JS.
    # Swagger UI adds <style> elements as it renders; this page shows only our own schema.
    path(
        "api/docs/",
        csp_update({"style-src-elem": ["'self'", "'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
    path("", include("tracking.urls")),
    path("playground/", include("playground.urls")),
    path("", include("evaluation.urls")),
    path("admin/", admin.site.urls),
]

# 503 + Retry-After when the database is busy or down (clients retry), else a plain 500.
handler500 = "webapp.errors.server_error"
