"""Portal forms for identity: sign-up extras, API keys, members, provider credentials."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import URLValidator

from .models import ProviderCredential, Role


class SignupForm(forms.Form):
    """Extra sign-up field (allauth's ACCOUNT_SIGNUP_FORM_CLASS): the new tenant's name."""

    organization = forms.CharField(max_length=120, required=False, label="Organisation",
                                   help_text="Your company or project; defaults to your email address.")

    def signup(self, request: Any, user: Any) -> None:
        # The tenant itself is created by the account adapter (tenants.adapters), which sees this
        # form's cleaned data; allauth requires the method to exist.
        return None


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, initial="default")
    expires_in_days = forms.IntegerField(min_value=1, max_value=3650, required=False, label="Expires in (days)",
                                         help_text="Empty: never expires.")


ROTATE_GRACE = [("0", "Now"), ("3600", "In 1 hour"), ("86400", "In 24 hours")]


class RotateKeyForm(forms.Form):
    old_key_expires = forms.ChoiceField(choices=ROTATE_GRACE, initial="0",
                                        label="The old key stops working")


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


def _model_list(value: str) -> list[str]:
    return [name.strip() for name in value.replace("\n", ",").split(",") if name.strip()]


class ProviderCredentialForm(forms.ModelForm):
    """A tenant's own upstream. The key is write-only: it is never put back into a page."""

    api_key = forms.CharField(widget=forms.PasswordInput(render_value=False), min_length=8, max_length=500,
                              label="API key", strip=True)
    models_text = forms.CharField(required=False, label="Models served",
                                  help_text="Comma-separated model names, e.g. gpt-4o, gpt-4o-mini.")

    class Meta:
        model = ProviderCredential
        fields = ["name", "base_url", "priority", "exclusive"]

    def clean_base_url(self) -> str:
        url = self.cleaned_data["base_url"].rstrip("/")
        URLValidator(schemes=["http", "https"])(url)
        return url

    def clean_models_text(self) -> list[str]:
        names = _model_list(self.cleaned_data.get("models_text", ""))
        if any(len(name) > 120 for name in names):
            raise forms.ValidationError("Model names are at most 120 characters.")
        return names

    def save(self, commit: bool = True) -> ProviderCredential:
        credential: ProviderCredential = super().save(commit=False)
        credential.model_names = self.cleaned_data["models_text"]
        credential.set_key(self.cleaned_data["api_key"])
        if commit:
            credential.save()
        return credential


class KeyLimitsForm(forms.Form):
    """A key's own limits; empty fields mean none (only the tenant's limits apply)."""

    monthly_budget_usd = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=4,
                                            label="Monthly budget (USD)",
                                            help_text="Spend per UTC month; over it, calls get a 429.")
    requests_per_minute = forms.IntegerField(required=False, min_value=1, max_value=10_000_000,
                                             label="Requests per minute")
    tokens_per_minute = forms.IntegerField(required=False, min_value=1, max_value=2_000_000_000,
                                           label="Tokens per minute")
    allowed_models = forms.CharField(required=False, max_length=4000, label="Allowed models",
                                     help_text="Comma-separated; empty: every model the tenant may call.")

    @classmethod
    def for_key(cls, key: Any, data: Any = None, **kwargs: Any) -> KeyLimitsForm:
        initial = {"monthly_budget_usd": key.monthly_budget_usd, "requests_per_minute": key.requests_per_minute,
                   "tokens_per_minute": key.tokens_per_minute, "allowed_models": ", ".join(key.allowed_models or [])}
        return cls(data, initial=initial, **kwargs)

    def clean_allowed_models(self) -> list[str]:
        names = _model_list(self.cleaned_data.get("allowed_models", ""))
        if any(len(name) > 120 or "\x00" in name for name in names):
            raise forms.ValidationError("Model names are at most 120 characters, without NUL.")
        return list(dict.fromkeys(names))

    def limits(self) -> dict[str, Any]:
        """Keyword arguments for ApiKey.set_limits."""
        return dict(self.cleaned_data)
