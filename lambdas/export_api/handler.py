"""GET /api/account/export and /api/account/export/{export_id}. Logic: tavari_dr.export.api."""

import json
import logging
import os

import boto3

from tavari_dr.export import api as export_api

logging.getLogger("tavari").setLevel(logging.INFO)
SETTINGS = export_api.ExportSettings.from_json(os.environ["TAVARI_EXPORT"])
_lambda = boto3.client("lambda")


def _dispatch(job):
    _lambda.invoke(FunctionName=SETTINGS.worker, InvocationType="Event", Payload=json.dumps(job).encode())


CLIENTS = export_api.Clients(dynamodb=boto3.client("dynamodb"), s3=boto3.client("s3", config=export_api.S3_CONFIG),
                             secretsmanager=boto3.client("secretsmanager"), dispatch=_dispatch)


def handler(event, context):
    return export_api.route(event, CLIENTS, SETTINGS)
