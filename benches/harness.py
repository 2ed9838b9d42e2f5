"""The one way the benches compare a contender (ours) with a peer (another tool, or a floor).

Rules every bench follows through this module:

* interleaved, rotating order: repetition i runs the contender first when i is even, the peer first
  when it is odd, so neither side always meets a warm (or a loaded) machine;
* each repetition of each side is a fresh process (``timed_process``): whole-process wall time, the
  interpreter's and the tool's start-up included, on both sides alike;
* the same work on both sides: the bench prepares the same state for each side (``prepare``) and
  says what parity it keeps (compression level, parallelism, download method);
* where requests are the cost, every HTTP request is counted (``count_requests`` on a moto server's
  log, or ``RequestCounter`` on a botocore client in-process);
* the report is the median of the per-repetition ratios (peer / contender: above 1 means ours is
  faster or cheaper) and their range, with the load average before and after, since this machine
  is shared.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# werkzeug (moto server) logs one line per request, after answering it; the method may be coloured.
REQUEST_RE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|POST|DELETE|HEAD) /')


@dataclass
class Sample:
    seconds: float
    requests: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    name: str
    contender: str
    peer: str
    samples: list[tuple[Sample, Sample]] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def ratios(self, what: str = "seconds") -> list[float]:
        out = []
        for ours, theirs in self.samples:
            a, b = getattr(ours, what), getattr(theirs, what)
            if a is not None and b is not None:
                out.append(b / max(a, 1e-9))
        return out

    def lines(self) -> list[str]:
        out = [f"{self.name}: {self.contender} vs {self.peer}, {len(self.samples)} repetition(s), "
               f"interleaved (order rotates), each side a fresh process"]
        for what, unit in (("seconds", "s"), ("requests", "requests")):
            ratios = self.ratios(what)
            if not ratios:
                continue
            ours = [getattr(s, what) for s, _ in self.samples]
            theirs = [getattr(t, what) for _, t in self.samples]
            out.append(f"  {what:<8} {self.contender} median {statistics.median(ours):9.2f} {unit}   "
                       f"{self.peer} median {statistics.median(theirs):9.2f} {unit}")
            out.append(f"  {what:<8} ratio {self.peer}/{self.contender}: median {statistics.median(ratios):.2f}x, "
                       f"range {min(ratios):.2f}x - {max(ratios):.2f}x")
        out.append(f"  load average (1/5/15 min) before {fmt_load(self.load_before)}, after {fmt_load(self.load_after)}"
                   f"; {os.cpu_count()} cores")
        return out


def fmt_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def compare(name: str, contender: tuple[str, Callable[[int], Sample]], peer: tuple[str, Callable[[int], Sample]],
            repetitions: int) -> Comparison:
    """Run both sides ``repetitions`` times, interleaved with a rotating order."""
    result = Comparison(name, contender[0], peer[0], load_before=os.getloadavg())
    for rep in range(repetitions):
        sides = (contender, peer) if rep % 2 == 0 else (peer, contender)
        got = {label: run(rep) for label, run in sides}
        result.samples.append((got[contender[0]], got[peer[0]]))
    result.load_after = os.getloadavg()
    return result


def timed_process(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
                  timeout: float = 3600, stdin: bytes | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Whole-process wall time of ``cmd`` (start-up included). Raises when the process fails."""
    started = time.monotonic()
    done = subprocess.run(list(cmd), env=env, cwd=cwd, input=stdin, capture_output=True, timeout=timeout)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")
    return seconds, done


def count_requests(log_text: str) -> Counter[str]:
    """Every request a moto server's (werkzeug's) log shows, by HTTP method."""
    return Counter(REQUEST_RE.findall(log_text))


class RequestCounter:
    """Every HTTP request (each attempt, retries included) a botocore client sends, by operation."""

    def __init__(self, client: Any) -> None:
        self.sent: Counter[str] = Counter()
        client.meta.events.register("request-created", self._count)

    def _count(self, operation_name: str = "?", **_: Any) -> None:
        self.sent[operation_name] += 1

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def nice_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **(extra or {})}
