"""Forms of the optimizer's portal pages: the overview's period, ledger filters, settings."""

from __future__ import annotations

import json
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms

from leo_optima.core.db import refuse_nul
from optimizer.analytics import GroupBy
from optimizer.models import OptimizerSettings, Technique
from optimizer.pipeline.routing import RoutingRule

PERIODS = [("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"), ("90d", "Last 90 days"),
           ("custom", "Dates")]
_DAYS = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}
MAX_RANGE = timedelta(days=400)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class PeriodForm(forms.Form):
    period = forms.ChoiceField(choices=PERIODS, required=False, initial="7d")
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}),
                          help_text="Inclusive (UTC)")

    def range(self, now: datetime) -> tuple[datetime, datetime]:
        """[start, end) in UTC; call after is_valid()."""
        data = self.cleaned_data
        period = data.get("period") or "7d"
        if period == "custom":
            return _day_start(data["start"]), min(_day_start(data["end"]) + timedelta(days=1), now)
        return now - timedelta(days=_DAYS[period]), now

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("period") == "custom":
            start, end = data.get("start"), data.get("end")
            if not start or not end:
                raise forms.ValidationError("Choose both dates.")
            if end < start:
                raise forms.ValidationError("The end date is before the start date.")
            if end - start > MAX_RANGE:
                raise forms.ValidationError("Choose at most 400 days.")
        return data


STATUS_CHOICES = [("", "Any"), ("ok", "Success"), ("error", "Error")]
SORT_CHOICES = [("", "Newest first"), ("slowest", "Slowest first"), ("fastest", "Fastest first")]
_ORDERING = {"": ("-created_at", "-id"), "slowest": ("-latency_ms", "-id"), "fastest": ("latency_ms", "id")}


def _tag_filter(value: str) -> tuple[str, str]:
    """`name=value` (a tag the client sent with X-LEO-Tags or `metadata`)."""
    name, sep, text = value.partition("=")
    try:
        GroupBy.parse(f"tag:{name.strip()}")
    except ValueError:
        raise forms.ValidationError("Give a tag as name=value.") from None
    if not sep:
        raise forms.ValidationError("Give a tag as name=value.")
    return name.strip(), text.strip()


class LedgerFilterForm(forms.Form):
    """Filters of the requests page and its CSV export."""

    key = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Key")
    model = forms.CharField(required=False, max_length=120)
    technique = forms.ChoiceField(required=False, choices=[("", "Any"), *Technique.choices])
    status = forms.ChoiceField(required=False, choices=STATUS_CHOICES)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To (inclusive)")
    user = forms.CharField(required=False, max_length=256, label="User", validators=[refuse_nul])
    tag = forms.CharField(required=False, max_length=330, label="Tag",
                          widget=forms.TextInput(attrs={"placeholder": "team=search"}))
    min_latency = forms.FloatField(required=False, min_value=0, max_value=3_600_000, label="Latency ≥ (ms)")
    max_latency = forms.FloatField(required=False, min_value=0, max_value=3_600_000, label="Latency ≤ (ms)")
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES, label="Sort")

    def __init__(self, *args: Any, keys: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["key"].choices = [("", "Any"), *keys]  # type: ignore[attr-defined]

    def apply(self, qs: Any) -> Any:
        data = self.cleaned_data
        if data.get("key"):
            qs = qs.filter(api_key_id=data["key"])
        if data.get("model"):
            qs = qs.filter(model=data["model"])
        if data.get("technique"):
            qs = qs.filter(technique=data["technique"])
        if data.get("status") == "ok":
            qs = qs.filter(status_code__lt=400)
        elif data.get("status") == "error":
            qs = qs.filter(status_code__gte=400)
        if data.get("start"):
            qs = qs.filter(created_at__gte=_day_start(data["start"]))
        if data.get("end"):
            qs = qs.filter(created_at__lt=_day_start(data["end"]) + timedelta(days=1))
        if data.get("user"):
            qs = qs.filter(end_user=data["user"])
        if data.get("tag"):
            name, value = data["tag"]
            qs = qs.alias(tag_value=GroupBy("tag", name).expression()).filter(tag_value=value)
        if data.get("min_latency") is not None:
            qs = qs.filter(latency_ms__gte=data["min_latency"])
        if data.get("max_latency") is not None:
            qs = qs.filter(latency_ms__lte=data["max_latency"])
        return qs

    def clean_tag(self) -> tuple[str, str] | None:
        value = self.cleaned_data.get("tag") or ""
        refuse_nul(value)
        return _tag_filter(value) if value.strip() else None

    def ordering(self) -> tuple[str, ...]:
        """Newest first, or by latency (ties by id, so pages never overlap); call after is_valid()."""
        return _ORDERING[self.cleaned_data.get("sort") or ""]


GROUP_CHOICES = [("model", "Model"), ("key", "API key"), ("user", "User (OpenAI `user` field)"), ("tag", "Tag")]


class BreakdownForm(PeriodForm):
    """The breakdown page: a period, and what to group by (a tag needs its name)."""

    group_by = forms.ChoiceField(choices=GROUP_CHOICES, required=False, initial="model", label="Group by")
    tag = forms.CharField(required=False, max_length=64, label="Tag name",
                          widget=forms.TextInput(attrs={"placeholder": "team"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("group_by") or "model"
        try:
            data["grouping"] = GroupBy.parse(f"tag:{data.get('tag') or ''}" if kind == "tag" else kind)
        except ValueError:
            self.add_error("tag", "Give the tag's name: up to 64 letters, digits or _.:-")
        return data


# Only owners change these: they decide whether users' prompts and answers are kept at all.
OWNER_FIELDS = ("store_bodies", "body_retention_days")

# api_keys: the pipeline's per-key opt-in (key prefixes; see docs/savings.md), not a RoutingRule field
_RULE_FIELDS = {f.name for f in dataclass_fields(RoutingRule)} | {"api_keys"}


class OptimizerSettingsForm(forms.ModelForm):
    """Switches and thresholds; routing rules as JSON, checked against RoutingRule before saving."""

    routing_rules_text = forms.CharField(required=False, label="Routing rules (JSON)",
                                         widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
                                         help_text='A list, e.g. [{"from_model": "gpt-4o", "to_model": "gpt-4o-mini", '
                                                   '"max_prompt_tokens": 200}]')

    class Meta:
        model = OptimizerSettings
        fields = ["exact_cache", "semantic_cache", "dedup", "decomposition", "prompt_mode", "routing",
                  "non_deterministic", "cache_ttl_seconds", "cache_max_entries", "semantic_threshold",
                  "semantic_margin", "max_wrong_rate", *OWNER_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["routing_rules_text"] = json.dumps(self.instance.routing_rules or [], indent=2)
        # Bounds that keep the pipeline sane; the model fields alone would accept any float.
        for name, low, high in (("semantic_threshold", 0.5, 1.0), ("semantic_margin", 0.0, 0.5),
                                ("max_wrong_rate", 0.001, 0.49)):
            self.fields[name].validators.append(_range(low, high))
        self.fields["cache_ttl_seconds"].validators.append(_range(60, 365 * 24 * 3600))
        self.fields["cache_max_entries"].validators.append(_range(1, 10_000_000))
        self.fields["body_retention_days"].validators.append(_range(1, 365))
        self.fields["store_bodies"].help_text = ("Owners only. Keeps each request's prompt and answer, with API "
                                                 "keys, tokens and passwords redacted, for the days below.")

    def clean_routing_rules_text(self) -> list[dict[str, Any]]:
        raw = (self.cleaned_data.get("routing_rules_text") or "").strip() or "[]"
        try:
            rules = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise forms.ValidationError("Give a list of objects.")
        refuse_nul(rules)  # the model field's validator; this form saves the field itself
        for i, rule in enumerate(rules, 1):
            unknown = set(rule) - _RULE_FIELDS
            if unknown:
                raise forms.ValidationError(f"Rule {i}: unknown field(s) {', '.join(sorted(unknown))}.")
            keys = rule.get("api_keys")
            if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
                raise forms.ValidationError(f"Rule {i}: api_keys must be a list of key prefixes.")
            try:
                RoutingRule(**{k: v for k, v in rule.items() if k != "api_keys"})
            except (TypeError, ValueError) as exc:
                raise forms.ValidationError(f"Rule {i}: {exc}.") from None
        return rules

    def save(self, commit: bool = True) -> OptimizerSettings:
        row: OptimizerSettings = super().save(commit=False)
        row.routing_rules = self.cleaned_data["routing_rules_text"]
        if commit:
            row.save()
        return row


def _range(low: float, high: float) -> Any:
    def check(value: float) -> None:
        if value is not None and not low <= value <= high:
            raise forms.ValidationError(f"Between {low:g} and {high:g}.")

    return check
