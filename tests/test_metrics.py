import json

import pytest

from tavari_dr.core import metrics


def test_emf_line_with_dimensions_and_aggregate():
    record = json.loads(metrics.emf_line({metrics.CHECK_FAILED: 1}, {"Check": "drift"}, aggregate=True,
                                         timestamp_ms=1700000000000))
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive == {"Namespace": "Tavari/Backup", "Dimensions": [["Check"], []],
                         "Metrics": [{"Name": "CheckFailed", "Unit": "Count"}]}
    assert record["Check"] == "drift" and record["CheckFailed"] == 1 and record["_aws"]["Timestamp"] == 1700000000000


def test_undocumented_metric_is_refused():
    with pytest.raises(ValueError, match="undocumented metric"):
        metrics.emf_line({"Whatever": 1})
