"""The optimizer's portal pages. Access goes through tenants.portal (404 for outsiders, 403 for
members on management actions); every query is filtered by request.tenant. The views parse, call
and render: what they read is in ``queries`` (and the overview's ``figures`` and
``latency_figures``), the CSV export's rows in ``csv_export``."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from optimizer import analytics, cache_admin
from optimizer.analytics import CACHE_TECHNIQUES
from optimizer.models import CacheEntry, Feedback, RequestBody, RequestLog
from optimizer.pipeline import config
from optimizer.pipeline.strictness import record_feedback
from optimizer.pipeline.writer import writer
from tenants.models import AuditEvent
from tenants.portal import portal_view, render_portal
from tenants.portal.urlbase import public_base_url

from . import charts, figures, latency_figures, queries
from .csv_export import csv_cell as csv_cell  # csv_export's; still importable from here, as tests do
from .csv_export import ledger_csv_rows
from .forms import OWNER_FIELDS, BreakdownForm, LedgerFilterForm, OptimizerSettingsForm, PeriodForm

PAGE_SIZE = 50
# Our request ids (optimizer/api/views.py): "req_" and a uuid4 in hex.
REQUEST_ID_RE = re.compile(r"req_[0-9a-f]{32}")
PENDING_SECONDS = 30  # how long an unknown id shows "being recorded" before it is a 404
OWN_WRITE_WAIT_SECONDS = 0.5
HITS_WINDOW = timedelta(days=30)
REFRESH_SECONDS = 30  # the overview's HTMX poll, paused while its tab is hidden


def _tenant_id(request: HttpRequest) -> int:
    return int(request.tenant.pk)  # type: ignore[attr-defined]


# --- Overview --------------------------------------------------------------------------------------

@portal_view()
def overview(request: HttpRequest) -> HttpResponse:
    tenant_id = _tenant_id(request)
    _read_own_writes()
    if not figures.has_traffic(tenant_id):
        # First run: nothing in the ledger yet, so the page is the quick start.
        return render_portal(request, "optimizer/first_run.html",
                             {"section": "overview", "base_url": public_base_url(request)})
    now = timezone.now()
    form = PeriodForm(request.GET or {"period": "7d"})
    if not form.is_valid():
        return render_portal(request, "optimizer/overview.html", {"section": "overview", "form": form}, status=400)
    start, end = form.range(now)
    data = figures.overview(tenant_id, start, end, now)
    times = [b.start for b in data.buckets]
    context = {
        "section": "overview", "form": form, "data": data, "totals": data.totals,
        "spend_chart": charts.spend_vs_saved(times, [b.totals.cost_usd for b in data.buckets],
                                             [b.totals.saved_usd for b in data.buckets], data.bucket_size),
        "hit_chart": charts.hit_rate(times, [b.totals.hit_rate if b.totals.requests else None for b in data.buckets],
                                     data.bucket_size),
        "quota_bars": queries.quota_bars(request.tenant, now),  # type: ignore[attr-defined]
        "now": now, "refresh_seconds": REFRESH_SECONDS,
    }
    lat = latency_figures.series(tenant_id, times, data.bucket_size, data.start, data.end, data.live_from)
    context.update(latency=lat, latency_chart=charts.latency(times, lat.p50, lat.p95, data.bucket_size))
    if request.htmx:  # type: ignore[attr-defined]
        # The poll: only the figures, no frame (the partial's own hx attributes keep it polling).
        return render(request, "optimizer/_overview_figures.html", context)
    return render_portal(request, "optimizer/overview.html", context)


# --- Breakdowns ------------------------------------------------------------------------------------

@portal_view()
def breakdown(request: HttpRequest) -> HttpResponse:
    """Spend, tokens, savings, hit rate and latency per model, key, `user` or tag value."""
    # 24 hours by default: breakdowns read the ledger itself, so longer periods cost more (docs/portal.md).
    form = BreakdownForm(request.GET or {"period": "24h", "group_by": "model"})
    context: dict[str, Any] = {"section": "breakdown", "form": form}
    if not form.is_valid():
        return render_portal(request, "optimizer/breakdown.html", context, status=400)
    start, end = form.range(timezone.now())
    grouping = form.cleaned_data["grouping"]
    result = analytics.breakdown(_tenant_id(request), start, end, grouping)
    if grouping.kind == "key":  # show each key's name beside its prefix
        names = queries.key_names(request.tenant)  # type: ignore[attr-defined]
        for group in result["groups"]:
            group["label"] = f"{group['value']}… {names.get(group['value'], '')}" if group["value"] else None
    context.update(result=result, start=start, end=end, grouping=grouping)
    return render_portal(request, "optimizer/breakdown.html", context)



# --- Requests (the ledger) -------------------------------------------------------------------------

def _filter_form(request: HttpRequest) -> LedgerFilterForm:
    return LedgerFilterForm(request.GET, keys=queries.key_choices(request.tenant))  # type: ignore[attr-defined]


def _page(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


def _querystring(form: LedgerFilterForm) -> str:
    return urlencode({k: v for k, v in form.data.items() if k in form.fields and v})


@portal_view()
def requests_list(request: HttpRequest) -> HttpResponse:
    form = _filter_form(request)
    qs = RequestLog.objects.filter(tenant=request.tenant)  # type: ignore[attr-defined]
    status = 200
    if form.is_valid():
        qs = form.apply(qs)
    else:
        qs, status = qs.none(), 400
    page = _page(request)
    ordering = form.ordering() if status == 200 else ("-created_at", "-id")
    rows, has_next = queries.one_page(qs.order_by(*ordering).select_related("api_key"), page, PAGE_SIZE)
    return render_portal(request, "optimizer/requests.html", {
        "section": "requests", "form": form, "rows": rows, "page": page,
        "has_next": has_next, "querystring": _querystring(form),
    }, status=status)


@portal_view()
def requests_csv(request: HttpRequest) -> HttpResponse:
    """The filtered ledger as CSV, streamed: rows are read in chunks and written as they come."""
    form = _filter_form(request)
    if not form.is_valid():
        return requests_list(request)
    qs = form.apply(RequestLog.objects.filter(tenant=request.tenant)).order_by(*form.ordering())  # type: ignore[attr-defined]
    prefixes = queries.key_prefixes(request.tenant)  # type: ignore[attr-defined]
    response = StreamingHttpResponse(ledger_csv_rows(qs, prefixes), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="leo-requests-{timezone.now():%Y%m%d-%H%M}.csv"'
    return response


def _read_own_writes() -> None:
    """Ledger rows are written behind (optimizer/pipeline/writer.py), a few tens of ms after the
    response. A portal page opened right after a call waits for this process's queue (bounded), so
    the call is on it; a row queued in another worker lands within LEO_LEDGER_FLUSH_SECONDS."""
    writer.flush(timeout=OWN_WRITE_WAIT_SECONDS)


def _pending(request: HttpRequest, request_id: str) -> HttpResponse:
    """A request id that is not (yet) in this tenant's ledger: 'being recorded', re-checked every
    second, then a 404 once PENDING_SECONDS have passed since the first look. Another tenant's id
    never gets here (a 404), so the page only ever echoes an id that is in no ledger."""
    if not REQUEST_ID_RE.fullmatch(request_id):
        raise Http404("No such request")
    now = int(time.time())
    try:
        since = int(request.GET.get("since", now))
    except ValueError:
        since = now
    if not now - PENDING_SECONDS <= since <= now:
        if request.htmx:  # type: ignore[attr-defined]
            response = HttpResponse(status=204)  # stop polling: load the 404 page
            response["HX-Redirect"] = f"{request.path}?since={since}"
            return response
        raise Http404("No such request")
    return render_portal(request, "optimizer/request_pending.html", {
        "section": "requests", "request_id": request_id, "poll_url": f"{request.path}?since={since}",
    })


@portal_view()
def request_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    _read_own_writes()
    row = (RequestLog.objects.select_related("api_key")
           .filter(tenant=request.tenant, request_id=request_id).first())  # type: ignore[attr-defined]
    if row is None:
        # Another tenant's request is a plain 404, like every cross-tenant URL (tests/test_isolation.py);
        # only an id in no ledger yet may be one of ours on its way.
        if RequestLog.objects.filter(request_id=request_id).exists():
            raise Http404("No such request")
        return _pending(request, request_id)
    if request.htmx:  # type: ignore[attr-defined]
        # The pending page's poll found the row: load the full page at its clean address.
        response = HttpResponse(status=204)
        response["HX-Redirect"] = request.path
        return response
    feedback = Feedback.objects.filter(request_log=row).first()
    stages = (row.trail or {}).get("stages", []) if isinstance(row.trail, dict) else []
    return render_portal(request, "optimizer/request_detail.html", {
        "section": "requests", "row": row, "stages": stages, "feedback": feedback,
        "served_from_cache": row.technique in CACHE_TECHNIQUES,
        **queries.body_context(row),
    })


@portal_view(manage=True)
@require_POST
def request_feedback(request: HttpRequest, request_id: str) -> HttpResponse:
    """Mark a served answer right or wrong; a verdict on a semantic hit moves the adaptive strictness,
    a tenant setting, so owners and admins only, like the settings page (members read)."""
    correct = request.POST.get("correct") == "1"
    result = record_feedback(_tenant_id(request), request_id, correct)
    if result is None:
        raise Http404("No such request")
    if result.get("semantic_strictness") is not None:
        messages.success(request, f"Thanks. Semantic matching now needs similarity "
                                  f"{result['semantic_threshold']:.3f} and judge probability "
                                  f"{result['semantic_min_probability']:.2f}.")
    else:
        messages.success(request, "Thanks, recorded.")
    nxt = request.POST.get("next", "")
    if nxt == "cache":
        return redirect("optimizer_portal:cache")
    return redirect("optimizer_portal:request_detail", request_id=request_id)


# --- Cache -----------------------------------------------------------------------------------------

@portal_view()
def cache(request: HttpRequest) -> HttpResponse:
    tenant_id = _tenant_id(request)
    q = request.GET.get("q", "").strip()[:200]
    model = request.GET.get("model", "").strip()[:120]
    page = _page(request)
    rows, has_next = queries.one_page(queries.cache_entries(tenant_id, q, model), page, PAGE_SIZE)
    hits, recent_hits = queries.cache_hits(tenant_id, since=timezone.now() - HITS_WINDOW)
    return render_portal(request, "optimizer/cache.html", {
        "section": "cache", "stats": cache_admin.stats(tenant_id), "rows": rows, "page": page,
        "hits": hits, "hits_days": HITS_WINDOW.days,
        "has_next": has_next, "q": q, "model": model, "recent_hits": recent_hits,
        "querystring": urlencode({k: v for k, v in (("q", q), ("model", model)) if v}),
    })


@portal_view(manage=True)
@require_POST
def cache_purge(request: HttpRequest) -> HttpResponse:
    model = request.POST.get("model", "").strip()[:120] or None
    removed = async_to_sync(cache_admin.purge)(_tenant_id(request), model=model)
    AuditEvent.record("cache.purged", tenant=request.tenant, actor=request.user, target=model or "all",  # type: ignore[attr-defined]
                      ip=request.META.get("REMOTE_ADDR"), entries=removed)
    messages.success(request, f"Purged {removed} cache entr{'y' if removed == 1 else 'ies'}.")
    return redirect("optimizer_portal:cache")


@portal_view(manage=True)
@require_POST
def cache_delete(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(CacheEntry.objects.only("pk"), pk=pk, tenant=request.tenant)  # type: ignore[attr-defined]
    async_to_sync(cache_admin.delete_entry)(_tenant_id(request), pk)
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponse("")  # the row is swapped out
    messages.success(request, "Cache entry deleted.")
    return redirect("optimizer_portal:cache")


# --- Optimizer settings ----------------------------------------------------------------------------

@portal_view()
def settings_page(request: HttpRequest) -> HttpResponse:
    row = config.get_settings_row(_tenant_id(request))
    can_manage = request.membership.can_manage  # type: ignore[attr-defined]
    status = 200
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("Owners and admins only")
        before = {name: getattr(row, name) for name in [*OptimizerSettingsForm.Meta.fields, "routing_rules"]}
        form = OptimizerSettingsForm(request.POST, instance=row)
        _owner_only(request, form)
        if form.is_valid():
            saved = form.save()
            if before["store_bodies"] and not saved.store_bodies:
                # Turning the setting off also forgets what was kept under it.
                RequestBody.objects.filter(tenant_id=_tenant_id(request)).delete()
            changed = {name: [_plain(before[name]), _plain(getattr(saved, name))]
                       for name in before if before[name] != getattr(saved, name)}
            if changed:
                AuditEvent.record("settings.changed", tenant=request.tenant, actor=request.user,  # type: ignore[attr-defined]
                                  target="optimizer", ip=request.META.get("REMOTE_ADDR"), changed=changed)
            config.forget(_tenant_id(request))  # this process; others reload within the config TTL
            messages.success(request, "Settings saved." if changed else "Nothing changed.")
            return redirect("optimizer_portal:settings")
        status = 400
    else:
        form = OptimizerSettingsForm(instance=row)
        _owner_only(request, form)
    if not can_manage:
        for field in form.fields.values():
            field.disabled = True
    return render_portal(request, "optimizer/settings.html", {"section": "settings", "form": form,
                                                              "adaptive": queries.adaptive_rule(row)}, status=status)


def _owner_only(request: HttpRequest, form: OptimizerSettingsForm) -> None:
    """Admins manage the optimizer, but only owners decide whether bodies are kept: for others
    those fields are disabled, so a posted value is ignored and the stored one kept."""
    if not request.membership.is_owner:  # type: ignore[attr-defined]
        for name in OWNER_FIELDS:
            form.fields[name].disabled = True


def _plain(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str, list, dict, type(None))) else str(value)

