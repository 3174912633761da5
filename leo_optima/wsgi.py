"""WSGI entry point, for tools that want one; production serves ASGI (leo_optima.asgi)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leo_optima.settings.local")
application = get_wsgi_application()
