"""The embedded default: no environment needed beyond the secrets `make setup` generated."""

from __future__ import annotations

from .base import *  # noqa: F403
from .env import strict_bool

DEBUG = strict_bool("DJANGO_DEBUG", default=True)
