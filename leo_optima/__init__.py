"""LEO Optima: a self-hosted, multi-tenant, OpenAI-compatible LLM gateway."""

# The Celery app loads with Django so that @shared_task binds to it (cookiecutter-django's way).
from .celery import app as celery_app

__all__ = ["celery_app"]
