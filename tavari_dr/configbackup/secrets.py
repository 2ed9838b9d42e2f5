"""Configuration backups in Secrets Manager: push an env file, pull it back, check it.

Plain functions over a boto3 ``secretsmanager`` client; values are never printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tavari_dr.core.config import SecretEntry
from tavari_dr.core.outputs import is_placeholder


def replica_arn(arn: str, region: str) -> str:
    """arn:aws:secretsmanager:<region>:<account>:secret:<name> in another region."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager":
        raise ValueError(f"{arn!r} is not a Secrets Manager secret ARN")
    parts[3] = region
    return ":".join(parts)


@dataclass(frozen=True)
class SecretState:
    entry: SecretEntry
    arn: str
    exists: bool
    value: str | None = None
    last_changed: datetime | None = None

    @property
    def is_set(self) -> bool:
        return self.exists and self.value is not None and not is_placeholder(self.value)


def read_states(client: Any, entries: tuple[SecretEntry, ...], arns: dict[str, str]) -> list[SecretState]:
    from botocore.exceptions import ClientError

    states = []
    for entry in entries:
        arn = arns[entry.name]
        try:
            described = client.describe_secret(SecretId=arn)
            value = client.get_secret_value(SecretId=arn).get("SecretString")
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceNotFoundException":
                states.append(SecretState(entry, arn, exists=False))
                continue
            raise
        changed = described.get("LastChangedDate") or described.get("CreatedDate")
        states.append(SecretState(entry, arn, exists=True, value=value, last_changed=changed))
    return states


@dataclass
class PushPlan:
    added: list[str] = field(default_factory=list)      # declared, not set yet, in the file
    changed: list[str] = field(default_factory=list)    # set, and the file differs
    unchanged: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)    # in the file, not declared
    not_in_file: list[str] = field(default_factory=list)

    @property
    def writes(self) -> list[str]:
        return self.added + self.changed


def plan_push(values: dict[str, str], states: list[SecretState]) -> PushPlan:
    plan = PushPlan()
    by_name = {s.entry.name: s for s in states}
    for key in values:
        if key not in by_name:
            plan.unknown.append(key)
    for name, state in by_name.items():
        if name not in values:
            plan.not_in_file.append(name)
        elif not state.is_set:
            plan.added.append(name)
        elif state.value != values[name]:
            plan.changed.append(name)
        else:
            plan.unchanged.append(name)
    return plan


def apply_push(client: Any, plan: PushPlan, values: dict[str, str], states: list[SecretState]) -> None:
    arns = {s.entry.name: s.arn for s in states}
    for name in plan.writes:
        client.put_secret_value(SecretId=arns[name], SecretString=values[name])


def pulled_values(states: list[SecretState]) -> tuple[dict[str, str], list[str]]:
    """Values to write, and the required entries that have none."""
    values = {s.entry.name: s.value for s in states if s.is_set and s.value is not None}
    missing = [s.entry.name for s in states if s.entry.required and not s.is_set]
    return values, missing


@dataclass(frozen=True)
class CheckRow:
    name: str
    required: bool
    status: str  # ok | missing | placeholder | stale | unset (optional)
    last_changed: datetime | None

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "unset (optional)")


def check(states: list[SecretState], *, max_age_days: int | None = None,
          now: datetime | None = None) -> list[CheckRow]:
    now = now or datetime.now(UTC)
    rows = []
    for s in states:
        if not s.exists:
            status = "missing" if s.entry.required else "unset (optional)"
        elif not s.is_set:
            status = "placeholder" if s.entry.required else "unset (optional)"
        elif max_age_days is not None and s.last_changed is not None \
                and (now - s.last_changed).days > max_age_days:
            status = "stale"
        else:
            status = "ok"
        rows.append(CheckRow(s.entry.name, s.entry.required, status, s.last_changed))
    return rows
