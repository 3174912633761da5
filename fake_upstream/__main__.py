"""``python -m fake_upstream --port N ...``: the same flags as ``manage.py fake_upstream``, no Django."""

from __future__ import annotations

from .serving import main

main()
