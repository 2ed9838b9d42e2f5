"""`python -m tavari_dr.drill.moto_server ARGS`: moto's server (the same arguments), holding the bucket
policies it cannot enforce.

moto evaluates a bucket policy's statements against no request context, so a Deny with a condition
(TLS only, TLS >= 1.2, "no write without If-None-Match", "everyone but the deploy role") would
refuse every request. Here such a Deny is kept, and read back by GetBucketPolicy as CloudFormation
would have put it, but judged not to match: the drill's drift checks see the deployed policy, and
its jobs run as they would where the condition does not hold. A Deny without a condition is still
enforced. The local deployer reports each such statement (ADR 0006, ADR 0011).

Two more gaps of moto's are closed here, both for the region-outage scenario (ADR 0026): KMS
``MessageType=DIGEST`` (moto hashes the digest again, so a signature never verifies with the key's
public key, as a failover to the DR region must verify it), and the version IDs CRR keeps (moto's
CopyObject makes new ones, so a replicated backup's pinned versions would not be found). A copy that
carries the header ``x-tavari-drill-replicate`` keeps the source's version ID, as a replica does.

moto's ListObjectVersions given a KeyMarker alone (no VersionIdMarker) drops the first version after it,
where S3 returns every version of every key after the marker: `tavari-dr status` lists a window of
backups from such a marker and checks the newest one's recorded versions, so a dropped version would
read as a deleted artifact. Here a lone KeyMarker starts after the last version of the last key not
after it, which moto's own marker pair handles as S3 does.

moto's CloudFormation models no CloudWatch alarm, so a stack registered with its alarms would list
none of them and `tavari-dr status` could not tell a declared alarm from none. Here an alarm
resource of a registered stack is listed by ListStackResources under its name, as CloudFormation
lists it; the alarm itself is put by the local deployer through PutMetricAlarm (ADR 0025).
"""

from __future__ import annotations

import sys
from typing import Any

from moto import server
from moto.core.common_models import CloudFormationModel
from moto.iam import access_control

from tavari_dr.drill.outage import REPLICATE_HEADER

ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")


def _conditional_denies_not_enforced() -> None:
    statement_class = access_control.IAMPolicyStatement
    original = statement_class.is_action_permitted

    def is_action_permitted(self: Any, action: str, resource: str = "*", principal: str | None = None,
                            incoming_condition_values: dict[str, str] | None = None) -> Any:
        statement = self._statement
        if statement.get("Effect") == "Deny" and statement.get("Condition") and not incoming_condition_values:
            return access_control.PermissionResult.NEUTRAL
        return original(self, action, resource, principal, incoming_condition_values)

    statement_class.is_action_permitted = is_action_permitted


def _kms_signs_digests() -> None:
    """Sign and verify ``MessageType=DIGEST`` as KMS does: ECDSA over the given digest, not over its hash."""
    import base64
    import json

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from moto.kms.responses import KmsResponse

    prehashed = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    sign, verify = KmsResponse.sign, KmsResponse.verify

    def digest_key(self: Any) -> Any:
        if self._get_param("MessageType") != "DIGEST" or self._get_param("SigningAlgorithm") != "ECDSA_SHA_256":
            return None
        key = self.kms_backend.describe_key(self._get_param("KeyId"))
        return key, self._get_param("Message")  # moto's _get_param decodes Message from base64

    def signed(self: Any) -> str:
        found = digest_key(self)
        if found is None:
            return sign(self)
        key, digest = found
        signature = key.private_key.private_key.sign(digest, prehashed)
        return json.dumps({"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(),
                           "SigningAlgorithm": "ECDSA_SHA_256"})

    def verified(self: Any) -> str:
        found = digest_key(self)
        if found is None:
            return verify(self)
        key, digest = found
        try:
            key.private_key.private_key.public_key().verify(base64.b64decode(self._get_param("Signature")), digest,
                                                            prehashed)
            valid = True
        except InvalidSignature:
            valid = False
        return json.dumps({"KeyId": key.arn, "SignatureValid": valid, "SigningAlgorithm": "ECDSA_SHA_256"})

    KmsResponse.sign, KmsResponse.verify = signed, verified


def _replicated_copies_keep_versions() -> None:
    import contextvars

    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    replicating: contextvars.ContextVar[bool] = contextvars.ContextVar("replicating", default=False)
    respond, copy = S3Response.copy_object, S3Backend.copy_object

    def respond_replicating(self: Any) -> Any:
        token = replicating.set(self.headers.get(REPLICATE_HEADER) is not None)
        try:
            return respond(self)
        finally:
            replicating.reset(token)

    def copy_keeping_version(self: Any, src_key: Any, dest_bucket_name: str, dest_key_name: str,
                             *args: Any, **kwargs: Any) -> Any:
        result = copy(self, src_key, dest_bucket_name, dest_key_name, *args, **kwargs)
        if replicating.get():
            self.get_object(dest_bucket_name, dest_key_name)._version_id = src_key.version_id
        return result

    S3Response.copy_object, S3Backend.copy_object = respond_replicating, copy_keeping_version

def _key_marker_alone_as_s3() -> None:
    from moto.core.utils import unix_time_millis
    from moto.s3.models import S3Backend

    original = S3Backend.list_object_versions

    def list_object_versions(self: Any, bucket_name: str, delimiter: str | None = None,
                             key_marker: str | None = None, max_keys: int | None = 1000, prefix: str = "",
                             version_id_marker: str | None = None) -> Any:
        if key_marker and not version_id_marker:
            # moto's order: by name, newest first; the marker pair is the last version at or before the marker.
            before = sorted((v for _, versions in self.get_bucket(bucket_name).keys.iterlists() for v in versions
                             if v.name <= key_marker), key=lambda v: (v.name, -unix_time_millis(v.last_modified)))
            key_marker, version_id_marker = (before[-1].name, before[-1].version_id) if before else (None, None)
        return original(self, bucket_name, delimiter=delimiter, key_marker=key_marker, max_keys=max_keys,
                        prefix=prefix, version_id_marker=version_id_marker)

    S3Backend.list_object_versions = list_object_versions  # type: ignore[method-assign]


def _listed(resource_type: str) -> type[CloudFormationModel]:
    """A stack resource that is only listed (its physical ID is its AlarmName): moto finds models among
    CloudFormationModel's subclasses, so defining the class registers it."""

    class Listed(CloudFormationModel):
        # moto files every model under its module's second part; run as __main__ there is none.
        __module__ = "tavari_dr.drill.moto_server"

        def __init__(self, name: str) -> None:
            self.physical_resource_id = name

        @staticmethod
        def cloudformation_type() -> str:
            return resource_type

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict[str, Any],
                                            account_id: str, region_name: str, **kwargs: Any) -> Any:
            return cls(resource_name)

        @classmethod
        def update_from_cloudformation_json(cls, original_resource: Any, new_resource_name: str,
                                            cloudformation_json: dict[str, Any], account_id: str,
                                            region_name: str) -> Any:
            return cls(new_resource_name)

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict[str, Any],
                                            account_id: str, region_name: str) -> None:
            return None

    Listed.__name__ = Listed.__qualname__ = "Listed" + resource_type.rsplit("::", 1)[-1]
    return Listed


def alarms_listed_by_cloudformation() -> None:
    """Make moto's CloudFormation list the alarm resources of a stack (idempotent)."""
    from moto.cloudformation import parsing

    known = {model.cloudformation_type() for model in CloudFormationModel.__subclasses__()}
    for resource_type in ALARM_TYPES:
        if resource_type not in known:
            _listed(resource_type)
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()


if __name__ == "__main__":
    _conditional_denies_not_enforced()
    _kms_signs_digests()
    _replicated_copies_keep_versions()
    _key_marker_alone_as_s3()
    alarms_listed_by_cloudformation()
    server.main(sys.argv[1:])
