"""S3 Batch Operations LambdaInvoke task: add delete markers. Logic: tavari_dr.batch_restore."""

import boto3

from tavari_dr.batch_restore import delete_marker_tasks

S3 = boto3.client("s3")


def handler(event, context):
    return delete_marker_tasks(event, S3)
