"""`python -m tavari_dr.drill.moto_server ARGS`: moto's server (the same arguments), holding the bucket
policies it cannot enforce.

moto evaluates a bucket policy's statements against no request context, so a Deny with a condition
(TLS only, TLS >= 1.2, "no write without If-None-Match", "everyone but the deploy role") would
refuse every request. Here such a Deny is kept, and read back by GetBucketPolicy as CloudFormation
would have put it, but judged not to match: the drill's drift checks see the deployed policy, and
its jobs run as they would where the condition does not hold. A Deny without a condition is still
enforced. The local deployer reports each such statement (ADR 0006, ADR 0011).
"""

from __future__ import annotations

import sys
from typing import Any

from moto import server
from moto.iam import access_control


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


if __name__ == "__main__":
    _conditional_denies_not_enforced()
    server.main(sys.argv[1:])
