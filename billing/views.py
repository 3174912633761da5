"""Portal pages for billing: plans, card, subscribe / change / cancel, invoices (owners and admins).

Views stay thin: forms validate, billing.subscriptions (with .customers and .invoices) does the
work, messages report the outcome.
Stripe.js is loaded from Stripe (or from localstripe when STRIPE_API_BASE points there), and the
page's CSP is widened for that one origin only on these pages.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from tenants.models import AuditEvent
from tenants.portal import portal_view, render_portal

from . import subscriptions
from .customers import setup_intent_secret
from .forms import SubscribeForm
from .invoices import invoices
from .models import Plan, StripeUsageSync
from .stripe_api import BillingNotConfigured, StripeRejected, StripeUnavailable, configured
from .stripe_sync import SyncBusy

UNAVAILABLE = "Stripe could not be reached; nothing was changed. Please try again in a minute."


def stripe_js_url() -> str:
    """Stripe.js: from Stripe, or localstripe's fake served under its own /js.stripe.com/v3/."""
    if settings.STRIPE_API_BASE:
        return settings.STRIPE_API_BASE.rstrip("/") + "/js.stripe.com/v3/"
    return "https://js.stripe.com/v3/"


def _with_stripe_csp(response: HttpResponse) -> HttpResponse:
    js = urlsplit(stripe_js_url())
    origin = f"{js.scheme}://{js.netloc}"
    api = urlsplit(settings.STRIPE_API_BASE or "https://api.stripe.com")
    # django-csp's csp_update, set per response so it follows the settings of the moment.
    response._csp_update = {"script-src": [origin], "frame-src": [origin],  # type: ignore[attr-defined]
                            "connect-src": [origin, f"{api.scheme}://{api.netloc}"]}
    return response


def _page(request: HttpRequest, form: SubscribeForm | None = None, status: int = 200) -> HttpResponse:
    account = subscriptions.account_for(request.tenant)  # type: ignore[attr-defined]
    context: dict[str, object] = {
        "section": "billing", "account": account, "effective_plan": account.effective_plan,
        "plans": Plan.objects.filter(active=True), "form": form or SubscribeForm(initial={"plan": account.plan.slug}),
        "configured": configured(), "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "stripe_js_url": stripe_js_url(), "upcoming": None, "invoices": [], "invoices_error": "",
        "usage": StripeUsageSync.objects.filter(tenant=account.tenant).exclude(
            status=StripeUsageSync.Status.NOTHING).order_by("-day", "-seq")[:31],
    }
    if configured():
        try:
            context["upcoming"], context["invoices"] = invoices(account)
        except (StripeUnavailable, StripeRejected):
            context["invoices_error"] = "Invoices are unavailable right now (Stripe could not be reached)."
    return _with_stripe_csp(render_portal(request, "billing/billing.html", context, status=status))


@portal_view(manage=True)
def billing(request: HttpRequest) -> HttpResponse:
    return _page(request)


@portal_view(manage=True)
@require_POST
def setup_intent(request: HttpRequest) -> HttpResponse:
    """A SetupIntent client secret for Stripe.js (JSON; the page's script asks for it)."""
    account = subscriptions.account_for(request.tenant)  # type: ignore[attr-defined]
    try:
        secret = setup_intent_secret(account, request.user.email)  # type: ignore[union-attr]
    except BillingNotConfigured:
        return JsonResponse({"error": "Billing is not configured."}, status=503)
    except StripeUnavailable:
        return JsonResponse({"error": UNAVAILABLE}, status=503)
    except StripeRejected as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"client_secret": secret})


@portal_view(manage=True)
@require_POST
def subscribe(request: HttpRequest) -> HttpResponse:
    form = SubscribeForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    account = subscriptions.account_for(request.tenant)  # type: ignore[attr-defined]
    plan: Plan = form.cleaned_data["plan"]
    try:
        subscriptions.subscribe(account, plan, form.cleaned_data["payment_method"])
    except BillingNotConfigured:
        form.add_error(None, "Billing is not configured on this server.")
        return _page(request, form, status=503)
    except StripeUnavailable:
        form.add_error(None, UNAVAILABLE)
        return _page(request, form, status=503)
    except StripeRejected as exc:
        form.add_error(None, str(exc))
        return _page(request, form, status=400)
    AuditEvent.record("billing.subscribe", tenant=account.tenant, actor=request.user,  # type: ignore[misc]
                      target=plan.slug, status=account.status)
    if account.is_paid:
        messages.success(request, f"You are on the {plan.name} plan.")
    else:
        messages.warning(request, f"The {plan.name} subscription is {account.get_status_display().lower()}; "
                                  "Free limits apply until it is paid.")
    return redirect("billing:home")


@portal_view(manage=True)
@require_POST
def cancel(request: HttpRequest) -> HttpResponse:
    account = subscriptions.account_for(request.tenant)  # type: ignore[attr-defined]
    try:
        subscriptions.cancel(account)
    except (StripeUnavailable, BillingNotConfigured, SyncBusy):
        messages.error(request, UNAVAILABLE)
        return redirect("billing:home")
    except StripeRejected as exc:
        messages.error(request, str(exc))
        return redirect("billing:home")
    AuditEvent.record("billing.cancel", tenant=account.tenant, actor=request.user)  # type: ignore[misc]
    messages.success(request, "Subscription canceled: the Free plan's limits apply from now.")
    return redirect("billing:home")
