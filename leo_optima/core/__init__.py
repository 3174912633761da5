"""The shared base every app builds on: database helpers (`db`), the shared state in Redis or local
memory (`state`), background tasks on the event loop (`aio`), JSON logging with redaction
(`logging`) and the health endpoints (`health`).

It imports no app of this project (tenants, optimizer, billing) and none of the wiring
(`leo_optima.settings`, `urls`, `asgi`, `wsgi`, `celery`); the layering is checked by the
import-linter contract in `.importlinter` (tests/test_layers.py).
"""
