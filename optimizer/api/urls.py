from __future__ import annotations

from django.urls import path, re_path

from . import errors, views

app_name = "api"

urlpatterns = [
    path("chat/completions", views.ChatCompletionsView.as_view(), name="chat-completions"),
    path("completions", views.CompletionsView.as_view(), name="completions"),
    path("embeddings", views.EmbeddingsView.as_view(), name="embeddings"),
    path("models", views.ModelsView.as_view(), name="models"),
    path("models/<path:model>", views.ModelDetailView.as_view(), name="model-detail"),
    path("analytics", views.AnalyticsView.as_view(), name="analytics"),
    path("feedback", views.FeedbackView.as_view(), name="feedback"),
    path("cache", views.CacheView.as_view(), name="cache"),
    path("cache/<int:entry_id>", views.CacheEntryView.as_view(), name="cache-entry"),
    re_path(r"^[\s\S]*$", errors.not_found, name="not-found"),  # last: the envelope for any unknown URL
]
