"""pg_snapshot visibility, as pg_visible_in_snapshot() decides it, for the 32-bit xids pgoutput sends.

A snapshot "xmin:xmax:xip,..." (pg_current_snapshot(), 64-bit xids with the epoch) sees a transaction
when its xid is below xmin, or below xmax and not in the in-progress list; an aborted transaction is
never decoded, so among the logged ones "not visible" means "committed after the snapshot".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        try:
            xmin, xmax, xip = text.split(":")
            return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))
        except ValueError:
            raise ValueError(f"{text!r} is not a pg_snapshot (xmin:xmax:xip,...)") from None

    def full_xid(self, xid32: int) -> int:
        """The 64-bit xid of a 32-bit one near this snapshot (within 2^31 of xmax, as PostgreSQL's own
        wraparound rules guarantee for any transaction still in the log)."""
        candidate = (self.xmax & ~0xFFFFFFFF) | xid32
        if candidate > self.xmax + 2 ** 31:
            candidate -= 2 ** 32
        elif candidate < self.xmax - 2 ** 31:
            candidate += 2 ** 32
        return candidate

    def visible(self, xid32: int) -> bool:
        xid = self.full_xid(xid32)
        if xid < self.xmin:
            return True
        return xid < self.xmax and xid not in self.xip
