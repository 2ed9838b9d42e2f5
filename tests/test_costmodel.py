"""The drill's cost model on synthetic counts: one test per step kind, the calibration fit, the counter."""

from __future__ import annotations

import json
import math

import boto3
import pytest
from moto import mock_aws

from tavari_dr.core import costmodel as m
from tavari_dr.core.aws import EMULATOR_CONFIG, RequestCounter
from tavari_dr.core.costmodel import Calibration, Counts, Linear, Production

CAL = Calibration(dump=Linear(1.0, 1e-8), restore=Linear(2.0, 1e-7), scan=Linear(0.5, 5e-8), cli_start_seconds=0.3,
                  source={"written_by": "test"})
PROD = Production(dump_bytes=2e9, invoice_count=100_000, invoice_bytes=20e9, breach_changed_share=0.1,
                  versions_per_key=3.0)


def test_committed_calibration_loads_and_names_its_source():
    calibration = m.load_calibration()
    assert calibration.restore.seconds_per_byte > 0 and calibration.cli_start_seconds > 0
    assert calibration.source["written_by"] == "benches/calibrate.py"
    assert calibration.source["host"] and calibration.source["date"] and calibration.source["command"]


def test_fit_is_least_squares_and_never_negative():
    fit = m.fit_linear([(1e6, 2.1), (2e6, 3.1), (4e6, 5.1)])
    assert math.isclose(fit.fixed_seconds, 1.1) and math.isclose(fit.seconds_per_byte, 1e-6)
    through_origin = m.fit_linear([(1e6, 0.5), (2e6, 2.0), (3e6, 3.4)])
    assert through_origin.fixed_seconds == 0.0 and through_origin.seconds_per_byte > 0
    with pytest.raises(ValueError):
        m.fit_linear([(1e6, 1.0)])
    flat = m.fit_linear([(1e6, 0.3), (2e6, 0.25), (4e6, 0.2)])  # a step that does not grow, and noise
    assert flat.seconds_per_byte == 0.0 and math.isclose(flat.fixed_seconds, 0.25)


def test_cli_steps_cost_start_up_and_requests_only():
    counts = Counts(requests={"api": 10, "list": 2}, processes=2)
    estimate = m.cli_steps(counts, CAL)
    assert math.isclose(estimate.seconds, 2 * 0.3 + 10 * m.AWS_API_SECONDS + 2 * m.S3_REQUEST_SECONDS)


def test_database_restore_without_section_fits_prices_the_restore_whole():
    counts = Counts(requests={"api": 3, "list": 1, "get": 4}, processes=1)
    estimate = m.database_restore(counts, PROD, CAL)
    download = 4 * m.S3_REQUEST_SECONDS / 4 + 2e9 / m.S3_CONNECTION_BYTES_PER_SECOND  # 4 GETs on 4 connections
    assert math.isclose(estimate.parts["download artifacts"], download)
    assert math.isclose(estimate.parts["pg_restore"], 2.0 + 1e-7 * 2e9)
    assert math.isclose(estimate.seconds, 0.3 + 4 * m.AWS_API_SECONDS + download + 202.0)
    bigger = m.database_restore(counts, Production(4e9, 1, 1, 0.1, 1), CAL)
    assert bigger.seconds > estimate.seconds


SECTIONED = Calibration(dump=CAL.dump, restore=CAL.restore, scan=CAL.scan, cli_start_seconds=0.3, source={},
                        restore_sections={"roles": Linear(0.2, 0.0), "pre-data": Linear(0.5, 0.0),
                                          "data": Linear(1.0, 6e-8), "post-data": Linear(0.5, 3e-8),
                                          "row counts": Linear(0.0, 1e-8)})


def test_database_restore_follows_the_pipeline_download_then_each_section():
    counts = Counts(requests={"api": 3, "list": 1, "get": 40}, processes=1)
    estimate = m.database_restore(counts, PROD, SECTIONED)
    assert list(estimate.parts) == ["process start-up", "AWS API calls", "download artifacts", "roles",
                                    "pg_restore pre-data", "pg_restore data", "pg_restore post-data", "row counts"]
    # 40 GETs on 8 connections, the bytes on one (the largest file is one object)
    assert math.isclose(estimate.parts["download artifacts"], 40 * m.S3_REQUEST_SECONDS / 8
                        + 2e9 / m.S3_CONNECTION_BYTES_PER_SECOND)
    assert math.isclose(estimate.parts["pg_restore data"], 1.0 + 6e-8 * 2e9)
    assert math.isclose(estimate.parts["pg_restore post-data"], 0.5 + 3e-8 * 2e9)
    assert math.isclose(estimate.seconds, sum(estimate.parts.values()))
    assert "pre-data_fit" in estimate.formula and estimate.formula.index("GETs") < estimate.formula.index("roles_fit")


def test_the_committed_calibration_has_the_restore_sections_in_order():
    calibration = m.load_calibration()
    assert list(calibration.restore_sections) == ["roles", "pre-data", "data", "post-data", "row counts"]
    assert calibration.restore_sections["data"].seconds_per_byte > 0
    assert all(fit.seconds_per_byte >= 0 and fit.fixed_seconds >= 0 for fit in calibration.restore_sections.values())


def test_database_scan_and_backup():
    assert math.isclose(m.database_scan(PROD, CAL).seconds, 0.5 + 5e-8 * 2e9)
    backup = m.database_backup(PROD, CAL)  # pg_dump 21 s; the upload (23.5 s at 85 MB/s) bounds it
    assert math.isclose(backup.seconds, 2e9 / m.S3_CONNECTION_BYTES_PER_SECOND)


def test_in_place_bucket_restore_lists_everything_and_copies_only_changed_keys():
    # The toy plan had 20 actions, made with 20 HEADs, 15 COPYs and 5 DELETEs.
    counts = Counts(requests={"api": 4, "list": 1, "head": 20, "copy": 15, "delete": 5}, processes=1)
    estimate = m.bucket_restore(counts, 20, PROD, CAL, into_new_bucket=False)
    assert estimate.inputs["actions"] == 10_000  # 10 % of 100,000 keys
    # 300,000 versions, listed to plan and again after the apply
    assert math.isclose(estimate.parts["list versions"], 2 * 300 * m.S3_REQUEST_SECONDS)
    reads, writes = 20 * 500, 20 * 500
    per_object = ((reads + writes) * m.S3_REQUEST_SECONDS + writes * 200_000 / m.S3_CONNECTION_BYTES_PER_SECOND) / 16
    assert math.isclose(estimate.parts["per-object requests"], per_object)
    assert "Glacier restore wait" not in estimate.parts


def test_restore_into_a_new_bucket_copies_every_key_and_lists_the_target():
    counts = Counts(requests={"list": 2, "copy": 10}, processes=1)
    estimate = m.bucket_restore(counts, 10, PROD, CAL, into_new_bucket=True)
    assert estimate.inputs["actions"] == 100_000
    # The source twice (plan, check after), the target empty and then with its 100,000 keys.
    assert math.isclose(estimate.parts["list versions"], (2 * 300 + 1 + 100) * m.S3_REQUEST_SECONDS)


def test_archived_versions_wait_for_glacier():
    counts = Counts(requests={"list": 1, "glacier_restore": 1}, processes=1)
    estimate = m.bucket_restore(counts, 1, PROD, CAL, into_new_bucket=False, archived_class="GLACIER")
    assert estimate.parts["Glacier restore wait"] == 5 * 3600
    assert m.glacier_wait_seconds("GLACIER_IR") == 0 and m.glacier_wait_seconds("DEEP_ARCHIVE") == 12 * 3600


def test_per_prefix_request_limits_bound_a_highly_concurrent_copy():
    assert math.isclose(m.s3_object_requests_seconds(0, 35_000, 0, 100_000), 10.0)  # 3,500 writes per second
    assert math.isclose(m.s3_object_requests_seconds(55_000, 0, 0, 100_000), 10.0)  # 5,500 reads per second


def test_bucket_verify_reads_every_object():
    estimate = m.bucket_verify(Counts(requests={"get": 19}), PROD)
    assert math.isclose(estimate.parts["list keys"], 100 * m.S3_REQUEST_SECONDS)
    assert math.isclose(estimate.parts["read every object"],
                        (100_000 * m.S3_REQUEST_SECONDS + 20e9 / m.S3_CONNECTION_BYTES_PER_SECOND) / 8)


def test_health_and_provisioning():
    assert math.isclose(m.health(2).seconds, 2 * m.HEALTH_CHECK_SECONDS)
    assert m.provision(Counts(requests={"api": 2}), CAL).seconds == m.PROVISION_DATABASE_SECONDS + 2 * m.AWS_API_SECONDS


def test_model_error_is_measured_over_predicted():
    assert m.model_error(12.0, 10.0) == 0.2 and m.model_error(1.0, 0) is None


@pytest.mark.moto
def test_the_counter_counts_requests_by_kind_and_bytes():
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1", config=EMULATOR_CONFIG)
        s3.create_bucket(Bucket="bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        counter = RequestCounter()
        counter.attach(s3)
        s3.put_object(Bucket="bucket", Key="k", Body=b"x" * 1000)
        s3.head_object(Bucket="bucket", Key="k")
        assert s3.get_object(Bucket="bucket", Key="k")["Body"].read() == b"x" * 1000
        s3.copy_object(Bucket="bucket", Key="k2", CopySource={"Bucket": "bucket", "Key": "k"})
        s3.list_object_versions(Bucket="bucket")
        s3.delete_object(Bucket="bucket", Key="k")
        s3.get_bucket_versioning(Bucket="bucket")
    assert counter.counts.requests == {"put": 1, "head": 1, "get": 1, "copy": 1, "list": 1, "delete": 1, "api": 1}
    assert counter.counts.bytes_written == 1000 and counter.counts.bytes_read == 1000
    assert Counts.from_json(json.loads(json.dumps(counter.counts.to_json()))) == counter.counts


def test_a_point_in_time_restore_adds_the_replay_of_a_day_of_changes():
    counts = Counts(processes=1, requests={"get": 10})
    plain = m.database_restore(counts, PROD, CAL)
    day = Production(PROD.dump_bytes, PROD.invoice_count, PROD.invoice_bytes, PROD.breach_changed_share,
                     PROD.versions_per_key, replay_changes=200_000, replay_segments=1440)
    replayed = m.database_restore(counts, day, CAL)
    expected = 1440 * m.S3_REQUEST_SECONDS / m.REPLAY_PREFETCH + 200_000 / m.REPLAY_CHANGES_PER_SECOND
    assert replayed.parts["replay change log"] == pytest.approx(expected)
    assert replayed.seconds == pytest.approx(plain.seconds + expected)
