"""What the reference backend stores: every exchange, and every request it did
not fully understand (the contract drift)."""

from __future__ import annotations

from django.db import models


class Exchange(models.Model):  # type: ignore[misc]
    """One call to an endpoint and what came of it."""

    endpoint = models.CharField(max_length=64, db_index=True)
    trace_id = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.PositiveSmallIntegerField()
    model = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    request = models.JSONField()
    response = models.JSONField()
    created = models.DateTimeField(auto_now_add=True)


class Drift(models.Model):  # type: ignore[misc]
    """A request the backend did not fully understand: an unknown route, an
    unknown field, or a field missing or of the wrong type."""

    endpoint = models.CharField(max_length=128, db_index=True)
    kind = models.CharField(max_length=32)  # unknown-route | unknown-fields | invalid
    detail = models.TextField()
    created = models.DateTimeField(auto_now_add=True)
