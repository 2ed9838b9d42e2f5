"""`python -m tavari_dr.drill.moto_server ARGS`: moto's server (the same arguments), holding the bucket
policies it cannot enforce.

moto evaluates a bucket policy's statements against no request context, so a Deny with a condition
(TLS only, TLS >= 1.2, "no write without If-None-Match", "everyone but the deploy role") would
refuse every request. Here such a Deny is kept, and read back by GetBucketPolicy as CloudFormation
would have put it, but judged not to match: the drill's drift checks see the deployed policy, and
its jobs run as they would where the condition does not hold. A Deny without a condition is still
enforced. The local deployer reports each such statement (ADR 0006, ADR 0011).

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
    alarms_listed_by_cloudformation()
    server.main(sys.argv[1:])
