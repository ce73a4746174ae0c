"""The native REST API under /api/v1/ (DRF), documented by its OpenAPI schema."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

router = DefaultRouter()
