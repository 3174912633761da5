"""``python manage.py fake_upstream --port N``: serve the fake OpenAI-compatible upstream.

A thin wrapper over ``fake_upstream.serve`` (the dev/test package at the repository's top level,
kept out of the product apps): one aiohttp server on loopback, log level warning. It prints the ``/v1`` base URL once the port is bound (useful with ``--port 0``).
Knobs can be changed while it runs with ``POST /_config``; counters are at ``GET /_stats``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fake_upstream import add_cli_arguments, knobs_from_options, serve


class Command(BaseCommand):
    """Run the deterministic fake upstream in the foreground until interrupted."""

    help = "Serve LEO's fake OpenAI-compatible upstream (a test double) on 127.0.0.1."
    # It serves HTTP and needs neither migrations nor the system checks.
    requires_system_checks = ()
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        add_cli_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            knobs = knobs_from_options(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        def announce(url: str) -> None:
            self.stdout.write(f"fake upstream (LEO test double) listening on {url}")
            self.stdout.flush()

        try:
            serve(options["host"], options["port"], log_level=options["log_level"], announce=announce, **knobs)
        except OSError as exc:  # port taken, address not available
            raise CommandError(f"cannot bind {options['host']}:{options['port']}: {exc}") from exc
