"""Identity: users, tenants, memberships, API keys, provider credentials, audit events.

This app imports no other app of the project (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, URLValidator
from django.db import models
from django.utils import timezone
from django.utils.text import slugify

from leo_optima.core.db import refuse_nul

from . import crypto, egress, keys

LAST_USED_RESOLUTION = timedelta(minutes=1)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in to the portal (and, when staff, to the admin). Email is the login."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()
    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    def __str__(self) -> str:
        return self.email


class Tenant(models.Model):
    """A customer organisation: owns keys, provider credentials, cache entries and the ledger rows.

    Quota fields: null means unlimited. Monthly quotas reset on the first of each UTC month.
    """

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    monthly_token_quota = models.BigIntegerField(null=True, blank=True)
    monthly_spend_quota_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    # Empty: every model of the platform catalogue; otherwise only these model names.
    allowed_models = models.JSONField(default=list, blank=True, validators=[refuse_nul])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def create(cls, name: str, **fields: Any) -> Tenant:
        base = slugify(name)[:50] or "tenant"
        slug, n = base, 1
        while cls.objects.filter(slug=slug).exists():
            n += 1
            slug = f"{base}-{n}"
        return cls.objects.create(name=name, slug=slug, **fields)


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class MembershipQuerySet(models.QuerySet["Membership"]):
    def owners(self) -> MembershipQuerySet:
        return self.filter(role=Role.OWNER)


class Membership(models.Model):
    """A user's role in a tenant, and what the role may do: the one place for role rules.

    Owners do everything; admins manage keys, members (not owners), provider credentials, settings
    and billing; members read. Only owners see the audit log, change owners, set alerts and decide
    whether request bodies are stored. A tenant keeps at least one owner.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="one_membership_per_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"

    @property
    def is_owner(self) -> bool:
        """Owner-only: the audit log, alerts, storing request bodies, making or unmaking owners."""
        return self.role == Role.OWNER

    @property
    def can_manage(self) -> bool:
        """Keys, members, provider credentials, settings, feedback and billing: owners and admins."""
        return self.role in (Role.OWNER, Role.ADMIN)

    def may_set_role(self, target: Membership | None, new_role: str | None) -> bool:
        """Whether this member may give `target` (None: someone invited) the role `new_role`
        (None: remove them). Managers only; only owners make or unmake owners."""
        if not self.can_manage:
            return False
        if self.is_owner:
            return True
        return new_role != Role.OWNER and (target is None or not target.is_owner)

    def leaves_no_owner(self, new_role: str | None) -> bool:
        """Whether giving this member `new_role` (None: removing them) would leave the tenant
        without an owner."""
        return self.is_owner and new_role != Role.OWNER and not Membership.objects.owners().filter(
            tenant_id=self.tenant_id).exclude(pk=self.pk).exists()


def _usable(now: datetime) -> models.Q:
    """The one rule for a key that may call /v1/*: not revoked, not expired, its tenant active."""
    return (models.Q(revoked_at__isnull=True, tenant__is_active=True)
            & (models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)))


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def usable(self) -> ApiKeyQuerySet:
        """Keys that may call /v1/* now."""
        return self.filter(_usable(timezone.now()))

    def with_usable(self) -> ApiKeyQuerySet:
        """Every key, annotated `usable` by the same rule, so that authentication reads a key and
        whether it may be used in one query (and can say why not)."""
        return self.annotate(usable=models.ExpressionWrapper(_usable(timezone.now()),
                                                             output_field=models.BooleanField()))


class ApiKey(models.Model):
    """A tenant's key for `/v1/*`. Only the lookup prefix and an HMAC digest are stored.

    Limits (null or empty: only the tenant's apply) are admitted in the same atomic step as the
    tenant's (tenants/quotas.py): a request goes through only when both have room.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=keys.PREFIX_LENGTH, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    monthly_budget_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True,
                                             validators=[MinValueValidator(Decimal("0"))])
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    # Empty: whatever the tenant may call; otherwise only these model names (within the tenant's).
    allowed_models = models.JSONField(default=list, blank=True, validators=[refuse_nul])
    # Names the key's month counter, so an edit restarts it from the ledger (a counter kept while
    # the budget was off was not kept up to date).
    limits_changed_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @classmethod
    def issue(cls, tenant: Tenant, name: str = "default", **fields: Any) -> tuple[ApiKey, str]:
        """Create a key; returns (row, plaintext). The plaintext exists only in this return value."""
        for _ in range(5):
            new = keys.generate()
            if not cls.objects.filter(prefix=new.prefix).exists():
                break
        key = cls.objects.create(tenant=tenant, name=name, prefix=new.prefix, digest=new.digest, **fields)
        return key, new.plaintext

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    @property
    def has_limits(self) -> bool:
        return bool(self.monthly_budget_usd is not None or self.requests_per_minute is not None
                    or self.tokens_per_minute is not None or self.allowed_models)

    def set_limits(self, *, monthly_budget_usd: Decimal | None = None, requests_per_minute: int | None = None,
                   tokens_per_minute: int | None = None, allowed_models: list[str] | None = None,
                   save: bool = True) -> None:
        """Replace the key's limits (None / empty: none), validated; the month counter restarts
        from the ledger (see `limits_changed_at`)."""
        self.monthly_budget_usd = monthly_budget_usd
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.allowed_models = list(allowed_models or [])
        self.limits_changed_at = timezone.now()
        self.full_clean(exclude=["tenant", "prefix", "digest", "created_by"], validate_unique=False)
        if save:
            self.save(update_fields=["monthly_budget_usd", "requests_per_minute", "tokens_per_minute",
                                     "allowed_models", "limits_changed_at"])

    def limit_values(self) -> dict[str, Any]:
        """The key's limits as `set_limits` takes them (to copy them onto a rotated key)."""
        return {"monthly_budget_usd": self.monthly_budget_usd, "requests_per_minute": self.requests_per_minute,
                "tokens_per_minute": self.tokens_per_minute, "allowed_models": list(self.allowed_models or [])}

    def limits(self) -> dict[str, Any]:
        """The key's limits as plain values, for audit events."""
        return {"monthly_budget_usd": None if self.monthly_budget_usd is None else str(self.monthly_budget_usd),
                "requests_per_minute": self.requests_per_minute, "tokens_per_minute": self.tokens_per_minute,
                "allowed_models": list(self.allowed_models or [])}

    def refusal(self) -> str:
        """Why a key that `usable()` leaves out is refused, in words for its caller."""
        if self.revoked_at is not None:
            return "This API key has been revoked."
        if not self.tenant.is_active:
            return "This tenant is disabled."
        return "This API key has expired."

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def touch_due(self, now: datetime) -> bool:
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION

    def touch(self, now: datetime | None = None) -> bool:
        """Record use at most once per LAST_USED_RESOLUTION, so the hot path stays read-mostly.
        The write is conditional, so workers that each hold an older copy of the key write once."""
        now = now or timezone.now()
        if not self.touch_due(now):
            return False
        self.last_used_at = now
        stale = models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        return bool(ApiKey.objects.filter(stale, pk=self.pk).update(last_used_at=now))


def validate_provider_url(value: str) -> None:
    """Refuse a provider URL the egress policy refuses (SSRF); checked again at call time."""
    try:
        URLValidator(schemes=list(egress.SCHEMES))(value)
    except ValidationError:
        return  # the URL field's own validator reports a malformed URL; one error is enough
    try:
        settings.LEO_EGRESS_ALLOW.check_url(value)
    except egress.EgressRefused as exc:
        raise ValidationError(str(exc), code="egress_refused") from None


class ProviderCredential(models.Model):
    """A tenant's own upstream account (any OpenAI-compatible API), its key encrypted at rest.

    `model_names` lists the model names it serves; requests for them go here first (by `priority`),
    with the platform's default upstream as the last fallback unless `exclusive` is set.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="provider_credentials")
    name = models.CharField(max_length=100)
    base_url = models.URLField(max_length=300, validators=[validate_provider_url])
    encrypted_key = models.TextField(editable=False)
    key_last4 = models.CharField(max_length=4, editable=False)
    model_names = models.JSONField(default=list, blank=True, validators=[refuse_nul])
    priority = models.PositiveSmallIntegerField(default=100)
    exclusive = models.BooleanField(default=False, help_text="Do not fall back to the platform upstream.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return f"{self.name} (…{self.key_last4})"

    def set_key(self, plaintext: str) -> None:
        self.encrypted_key = crypto.encrypt(plaintext)
        self.key_last4 = plaintext[-4:]

    def get_key(self) -> str:
        return crypto.decrypt(self.encrypted_key)


class AuditEvent(models.Model):
    """What matters to security: keys created or revoked, roles and settings changed, failed logins."""

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target}"

    @classmethod
    def record(cls, action: str, *, tenant: Tenant | None = None, actor: User | None = None,
               target: str = "", ip: str | None = None, **data: Any) -> AuditEvent:
        return cls.objects.create(tenant=tenant, actor=actor, action=action, target=target, ip=ip, data=data)

