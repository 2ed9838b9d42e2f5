"""boto3 clients and CloudFormation-output discovery, shared by every CLI command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# Local emulators (moto) give multipart objects a whole-object checksum that does not match;
# S3 marks them composite ("-N"), which botocore never validates. Against an emulator the
# automatic response check is therefore off; the project verifies its own sha256 end to end.
EMULATOR_CONFIG = Config(response_checksum_validation="when_required")


class DiscoveryError(RuntimeError):
    """A deployed resource could not be found; the message says what to deploy or pass."""


@dataclass(frozen=True)
class AwsTarget:
    """Where the CLI talks to: real AWS, or a local emulator through endpoint_url."""

    region: str | None  # None: boto3's own default (AWS_REGION, profile)
    dr_region: str | None = None
    endpoint_url: str | None = None

    def client(self, service: str, *, dr: bool = False) -> Any:
        region = self.dr_region if dr and self.dr_region else self.region
        config = EMULATOR_CONFIG if self.endpoint_url else None
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint_url, config=config)


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ValidationError":
            region = cloudformation.meta.region_name
            raise DiscoveryError(
                f"stack {stack_name} is not deployed in {region}; deploy it, or name the resource explicitly"
            ) from None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
