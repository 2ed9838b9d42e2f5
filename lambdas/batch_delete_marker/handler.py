"""S3 Batch Operations LambdaInvoke task: add delete markers. Logic: tavari_dr.bucket.batch."""

from tavari_dr.bucket.batch import delete_marker_tasks, restore_id_of
from tavari_dr.core import aws, observability

S3 = aws.client("s3")


@observability.lambda_handler("batch_delete_marker", correlation=lambda event: {"restore_id": restore_id_of(event)})
def handler(event, context):
    return delete_marker_tasks(event, S3)
