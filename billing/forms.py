"""Portal forms of the billing app."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from .models import Plan


class SubscribeForm(forms.Form):
    """Choose a paid plan; `payment_method` is filled in by Stripe.js after card collection."""

    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), to_field_name="slug", empty_label=None)
    payment_method = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput,
                                     validators=[RegexValidator(r"^pm_[A-Za-z0-9_]+$", "Invalid payment method.")])

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["plan"].queryset = Plan.objects.filter(active=True).exclude(slug="free")  # type: ignore[attr-defined]
