"""The InvoiceBucket construct on its own: options that cdk.json does not exercise."""

from __future__ import annotations

import pytest
from aws_cdk import App, Duration, Environment, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from backup_constructs.invoice_bucket import InvoiceBucket
from tests.conftest import cdk_context


def synth(**kwargs) -> tuple[Template, InvoiceBucket]:
    stack = Stack(App(context=cdk_context()), "T", env=Environment(account="123456789012", region="eu-west-1"))
    bucket = InvoiceBucket(stack, "Invoices", **kwargs)
    return Template.from_stack(stack), bucket


def test_archiving_small_objects_needs_glacier_and_lifts_the_size_floor():
    template, _ = synth(archive_storage_class=s3.StorageClass.GLACIER, archive_small_objects=True,
                        noncurrent_archive_after=Duration.days(30))
    template.has_resource_properties("AWS::S3::Bucket", {"LifecycleConfiguration": {
        "TransitionDefaultMinimumObjectSize": "varies_by_storage_class",
        "Rules": Match.array_with([{
            "Id": "ArchiveNoncurrentVersions", "Status": "Enabled",
            "NoncurrentVersionTransitions": [{"StorageClass": "GLACIER", "TransitionInDays": 30}],
        }]),
    }})


def test_archiving_small_objects_to_glacier_ir_is_refused():
    with pytest.raises(ValueError, match="only to GLACIER or DEEP_ARCHIVE"):
        synth(archive_small_objects=True)


def test_app_principal_can_upload_read_and_presign_but_not_delete():
    stack = Stack(App(context=cdk_context()), "T", env=Environment(account="123456789012", region="eu-west-1"))
    invoices = InvoiceBucket(stack, "Invoices")
    invoices.grant_app_access(iam.Role.from_role_arn(stack, "App", "arn:aws:iam::123456789012:role/tavari-app"))
    template = Template.from_stack(stack)
    (policy,) = template.find_resources("AWS::IAM::Policy").values()
    assert policy["Properties"]["Roles"] == ["tavari-app"]
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"]
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert {"s3:PutObject", "s3:GetObject*", "kms:GenerateDataKey*", "kms:Decrypt", "kms:Encrypt"} <= actions
    assert not any("Delete" in a for a in actions)


def test_existing_bucket_name_is_kept_for_cdk_import():
    template, _ = synth(bucket_name="tavari-invoices-prod")
    template.has_resource_properties("AWS::S3::Bucket", {"BucketName": "tavari-invoices-prod",
                                                         "VersioningConfiguration": {"Status": "Enabled"}})
