"""A stored answer: the cache's source of truth."""

from __future__ import annotations

from django.db import models

from tenants.models import Tenant


class CacheEntry(models.Model):
    """A stored answer. The source of truth for the semantic index; the exact cache mirrors it in Redis."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="cache_entries")
    scope_hash = models.CharField(max_length=64)
    key_hash = models.CharField(max_length=64)
    model = models.CharField(max_length=120)
    namespace = models.CharField(max_length=100, blank=True, default="")
    request_text = models.TextField()
    embedding = models.BinaryField(null=True, blank=True)
    response = models.JSONField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    is_part = models.BooleanField(default=False, help_text="One part of a decomposed question.")
    hits = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_hit_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "key_hash"]),
            models.Index(fields=["tenant", "last_hit_at"]),
            models.Index(fields=["expires_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.request_text[:60]}"
