"""The embedded default: no environment needed beyond the secrets `make setup` generated.

DEBUG is on for `manage.py` commands run by hand; scripts/serve.sh (`make run`) turns it off, and
only `make dev` serves pages with it on.
"""

from __future__ import annotations

from .base import *  # noqa: F403
from .env import strict_bool

DEBUG = strict_bool("DJANGO_DEBUG", default=True)
# WhiteNoise serves static files with DEBUG off too; reading them from the app and project static
# directories, rather than only the last collectstatic, keeps an edited stylesheet current.
WHITENOISE_USE_FINDERS = True
