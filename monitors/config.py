"""Typed monitor configuration (from the YAML settings file): policies and notifiers."""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.store.policies import PolicySpec
from monitors.durations import parse_duration


class Selector(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace_prefix: str | None = None
    type: str | None = None
    tag: str | None = None
    owner: str | None = None
    key_glob: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {key: value for key, value in self.model_dump().items() if value is not None}


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def check_cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a cron expression (minute hour day month weekday)")
    return value


class PolicyConfig(BaseModel):
    """`max_age: 24h`, or `cron: "0 6 * * *"` (+ `timezone`), or `auto: true`; plus a selector or `asset`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    asset: str | None = None
    selector: Selector | None = None
    max_age: str | float | None = None
    cron: str | None = None
    timezone: str = "UTC"
    auto: bool = False
    tolerance: float | None = Field(default=None, gt=0)
    min_history: int | None = Field(default=None, ge=2)
    severity: Literal["warn", "error"] = "warn"

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("max_age", mode="before")
    @classmethod
    def _max_age(cls, value: object) -> object:
        # YAML reads `max_age: yes` as true, which would otherwise become a maximum age of 1 s.
        if isinstance(value, bool):
            raise ValueError("max_age must be a duration such as 24h, 90m or PT90M, not a boolean")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @model_validator(mode="after")
    def _one_kind(self) -> PolicyConfig:
        kinds = [self.max_age is not None, self.cron is not None, self.auto]
        if sum(kinds) != 1:
            raise ValueError(f"policy {self.name!r} needs exactly one of max_age, cron or auto: true")
        if (self.asset is None) == (self.selector is None):
            raise ValueError(f"policy {self.name!r} needs exactly one of asset or selector")
        if self.selector is not None and not self.selector.as_dict():
            raise ValueError(
                f"policy {self.name!r} has an empty selector; name at least one of "
                "namespace_prefix, type, tag, owner, key_glob (key_glob: '*' for every asset)"
            )
        if self.max_age is not None:
            parse_duration(self.max_age)
        return self

    def to_spec(self, source: str = "config") -> PolicySpec:
        kind = "max_age" if self.max_age is not None else "cron" if self.cron else "auto"
        return PolicySpec(
            name=self.name,
            kind=kind,
            severity=self.severity,
            asset_key=self.asset,
            selector=self.selector.as_dict() if self.selector else None,
            max_age_seconds=int(parse_duration(self.max_age)) if self.max_age is not None else None,
            cron=self.cron,
            timezone=self.timezone,
            tolerance=self.tolerance,
            min_history=self.min_history,
            source=source,
        )


class Route(Selector):
    min_severity: Literal["warn", "error"] = "warn"


class NotifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["log", "webhook", "slack"]
    url: str | None = None
    secret: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10.0, gt=0)
    route: Route = Field(default_factory=Route)

    @model_validator(mode="after")
    def _url(self) -> NotifierConfig:
        if self.kind in ("webhook", "slack") and not self.url:
            raise ValueError(f"notifier {self.name!r} of kind {self.kind} needs a url")
        return self


def _repeated(names: list[str]) -> str:
    return ", ".join(repr(name) for name in sorted({name for name in names if names.count(name) > 1}))


def parse_policies(raw: list[dict[str, Any]]) -> list[PolicyConfig]:
    policies = [PolicyConfig.model_validate(item) for item in raw]
    names = [policy.name for policy in policies]
    if len(names) != len(set(names)):
        raise ValueError(f"freshness policy names must be unique; repeated: {_repeated(names)}")
    return policies


def parse_notifiers(raw: list[dict[str, Any]]) -> list[NotifierConfig]:
    notifiers = [NotifierConfig.model_validate(item) for item in raw]
    names = [notifier.name for notifier in notifiers]
    if len(names) != len(set(names)):
        raise ValueError(f"notifier names must be unique; repeated: {_repeated(names)}")
    return notifiers
