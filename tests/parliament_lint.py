"""Runs under build/parliament's Python, never the project's (requirements-parliament.txt says why).

``python parliament_lint.py lint`` reads a JSON list of policies on stdin and writes, for each, the list
of its findings ({"issue", "detail"}); ``arn-match`` reads a JSON list of [resource type, ARN format,
resource] and writes whether each resource is of that type, as parliament matches them;
``iam-definition`` writes the IAM data parliament ships (services, their actions and resource types)."""

from __future__ import annotations

import json
import sys

import parliament


def main(command: str) -> None:
    if command == "iam-definition":
        json.dump(parliament.iam_definition, sys.stdout)
        return
    if command == "arn-match":
        json.dump([parliament.is_arn_match(*triple) for triple in json.load(sys.stdin)], sys.stdout)
        return
    policies = json.load(sys.stdin)
    findings = [[{"issue": f.issue, "detail": f.detail} for f in
                 parliament.analyze_policy_string(json.dumps(p), include_community_auditors=False).findings]
                for p in policies]
    json.dump(findings, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1])
