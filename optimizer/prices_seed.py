"""Public list prices (USD per million tokens) that seed `ModelPrice`; editable in the admin afterwards.

Sources: the providers' public pricing pages as of 2025. Operators should review them.
"""

from __future__ import annotations

from decimal import Decimal

PRICES: list[tuple[str, str, str, str, str]] = [
    # model, provider, kind, input, output
    ("gpt-4o", "openai", "chat", "2.50", "10.00"),
    ("gpt-4o-mini", "openai", "chat", "0.15", "0.60"),
    ("gpt-4.1", "openai", "chat", "2.00", "8.00"),
    ("gpt-4.1-mini", "openai", "chat", "0.40", "1.60"),
    ("gpt-4.1-nano", "openai", "chat", "0.10", "0.40"),
    ("o3-mini", "openai", "chat", "1.10", "4.40"),
    ("o4-mini", "openai", "chat", "1.10", "4.40"),
    ("gpt-3.5-turbo", "openai", "chat", "0.50", "1.50"),
    ("gpt-3.5-turbo-instruct", "openai", "completion", "1.50", "2.00"),
    ("text-embedding-3-small", "openai", "embedding", "0.02", "0"),
    ("text-embedding-3-large", "openai", "embedding", "0.13", "0"),
    ("text-embedding-ada-002", "openai", "embedding", "0.10", "0"),
    ("claude-3-5-sonnet-latest", "anthropic", "chat", "3.00", "15.00"),
    ("claude-3-5-haiku-latest", "anthropic", "chat", "0.80", "4.00"),
    ("gemini-2.0-flash", "google", "chat", "0.10", "0.40"),
    ("gemini-1.5-pro", "google", "chat", "1.25", "5.00"),
    ("llama-3.1-8b-instant", "groq", "chat", "0.05", "0.08"),
    ("llama-3.3-70b-versatile", "groq", "chat", "0.59", "0.79"),
]


def seed(model_price: type) -> None:
    """Insert or update the seeded prices (used by the data migration and by tests after a flush)."""
    for model, provider, kind, inp, out in PRICES:
        model_price.objects.update_or_create(model=model, defaults={
            "provider": provider, "kind": kind, "input_per_million": Decimal(inp),
            "output_per_million": Decimal(out)})
