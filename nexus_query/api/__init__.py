"""The HTTP API (the ``server`` extra: FastAPI + uvicorn). ``nexus serve`` runs it."""

from nexus_query.api.app import create_app

__all__ = ["create_app"]
