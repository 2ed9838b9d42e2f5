"""GET /api/account/export and /api/account/export/{export_id}. Logic: tavari_dr.export.api."""

import json
import os

from tavari_dr.core import aws, observability
from tavari_dr.export import api as export_api

SETTINGS = export_api.ExportSettings.from_json(os.environ["TAVARI_EXPORT"])
_lambda = aws.client("lambda")


def _dispatch(job):
    _lambda.invoke(FunctionName=SETTINGS.worker, InvocationType="Event", Payload=json.dumps(job).encode())


CLIENTS = export_api.Clients(dynamodb=aws.client("dynamodb"), s3=aws.client("s3", config=export_api.S3_CONFIG),
                             secretsmanager=aws.client("secretsmanager"), dispatch=_dispatch)


# The export ID, once known, is in the lines tavari_dr.export.api writes; the path's, when asked for one.
@observability.lambda_handler("export_api", correlation=lambda event: {
    "export_id": (event.get("pathParameters") or {}).get("export_id")})
def handler(event, context):
    return export_api.route(event, CLIENTS, SETTINGS)
