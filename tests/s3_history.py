"""Build a bucket history at known times (moto + freezegun) and the model of what it looked like."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from freezegun import freeze_time

BASE = datetime(2026, 11, 1, 9, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=10)


@dataclass
class History:
    """Applies operations ten minutes apart; ``snapshots[i]`` is the visible state after op i."""

    client: Any
    bucket: str
    clock: datetime = BASE
    visible: dict[str, dict[str, Any]] = field(default_factory=dict)
    snapshots: list[tuple[datetime, dict[str, dict[str, Any]]]] = field(default_factory=list)

    def _tick(self) -> datetime:
        self.clock += STEP
        return self.clock

    def put(self, key: str, body: bytes, metadata: dict[str, str] | None = None,
            content_type: str = "application/pdf", **extra: Any) -> None:
        with freeze_time(self._tick()):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=metadata or {},
                                   ContentType=content_type, **extra)
        self.visible[key] = {"body": body, "metadata": metadata or {}, "content_type": content_type}
        self._snap()

    def delete(self, key: str) -> None:
        with freeze_time(self._tick()):
            self.client.delete_object(Bucket=self.bucket, Key=key)
        self.visible.pop(key, None)
        self._snap()

    def _snap(self) -> None:
        self.snapshots.append((self.clock, {k: dict(v) for k, v in self.visible.items()}))

    def time_after(self, index: int) -> datetime:
        """A moment after op ``index`` and before the next one."""
        return self.snapshots[index][0] + STEP / 2

    def state_after(self, index: int, prefix: str = "") -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.snapshots[index][1].items() if k.startswith(prefix)}
