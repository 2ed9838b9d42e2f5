"""S3 Batch Operations LambdaInvoke task: add delete markers. Logic: tavari_dr.bucket.batch."""

import boto3

from tavari_dr.bucket.batch import delete_marker_tasks

S3 = boto3.client("s3")


def handler(event, context):
    return delete_marker_tasks(event, S3)
