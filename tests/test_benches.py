"""Each bench ported onto benches/harness.py runs at a tiny size, so none can rot unnoticed. Figures
are not asserted (they depend on the machine's load); what is asserted is that the comparison ran
to its end, both sides ending in the same state, and printed its ratios and the load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benches import harness

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_harness_rotates_the_order_and_reports_median_and_range_of_the_ratios():
    order = []

    def side(label, seconds):
        def run(rep):
            order.append((rep, label))
            return harness.Sample(seconds[rep], requests=10 if label == "ours" else 40)
        return run

    result = harness.compare("toy", ("ours", side("ours", [1.0, 2.0, 1.0])), ("peer", side("peer", [2.0, 2.0, 4.0])),
                             3)
    assert order == [(0, "ours"), (0, "peer"), (1, "peer"), (1, "ours"), (2, "ours"), (2, "peer")]
    text = "\n".join(result.lines())
    assert "ratio peer/ours: median 2.00x, range 1.00x - 4.00x" in text
    assert "requests ratio peer/ours: median 4.00x" in text and "load average" in text


def test_the_request_count_reads_every_method_from_a_moto_server_log():
    log = ('127.0.0.1 - - [x] "GET /b?versions HTTP/1.1" 200 -\n'
           '127.0.0.1 - - [x] "\x1b[32mPUT /b/k HTTP/1.1\x1b[0m" 200 -\n'
           '127.0.0.1 - - [x] "HEAD /b/k HTTP/1.1" 404 -\n127.0.0.1 - - [x] "DELETE /b/k HTTP/1.1" 204 -\n')
    assert harness.count_requests(log) == {"GET": 1, "PUT": 1, "HEAD": 1, "DELETE": 1}


@pytest.mark.moto
def test_bucket_restore_bench_runs_at_a_tiny_size():
    done = subprocess.run([sys.executable, "benches/bucket_restore.py", "--keys", "12", "--changed-share", "0.25",
                           "--repetitions", "1"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "both tools end in exactly the state at T: yes" in done.stdout
    assert "requests ratio s3-pit-restore/tavari-dr" in done.stdout and "load average" in done.stdout
