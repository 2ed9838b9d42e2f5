"""Background account export (dispatched by export_api for large accounts). Logic: tavari_dr.export.api."""

import os

from tavari_dr.core import aws, observability
from tavari_dr.export import api as export_api

SETTINGS = export_api.ExportSettings.from_json(os.environ["TAVARI_EXPORT"])
CLIENTS = export_api.Clients(dynamodb=aws.client("dynamodb"), s3=aws.client("s3", config=export_api.S3_CONFIG),
                             secretsmanager=aws.client("secretsmanager"))


@observability.lambda_handler("export_worker", correlation=observability.from_event(export_id="export_id"))
def handler(event, context):
    return export_api.work(event, CLIENTS, SETTINGS)
