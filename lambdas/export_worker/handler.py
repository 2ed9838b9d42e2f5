"""Background account export (dispatched by export_api for large accounts). Logic: tavari_dr.export.api."""

import logging
import os

import boto3

from tavari_dr.export import api as export_api

logging.getLogger("tavari").setLevel(logging.INFO)
SETTINGS = export_api.ExportSettings.from_json(os.environ["TAVARI_EXPORT"])
CLIENTS = export_api.Clients(dynamodb=boto3.client("dynamodb"), s3=boto3.client("s3", config=export_api.S3_CONFIG),
                             secretsmanager=boto3.client("secretsmanager"))


def handler(event, context):
    return export_api.work(event, CLIENTS, SETTINGS)
