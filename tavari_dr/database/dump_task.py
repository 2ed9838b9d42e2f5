"""A base reset's fresh dump, taken by the nightly backup job's own task (issue 27).

The always-on capture (`db stream`) must not hold what a dump needs — the manifest signing key, writes
under dumps/, the backup connection's secret — or, compromised, it could mint a signed "latest"
backup. When its log starts a new base it asks ECS to run the nightly job's task definition once more,
with only the reason overridden (REASON_ENV, which `db backup --reason` reads); the dump is then
written and signed by the nightly job's identity, under its alarms (JobFailed{Job=db_backup}).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tavari_dr.core import outputs

# `db backup --reason` reads it (the nightly task definition sets "nightly"); a run's container override
# replaces it, nothing else.
REASON_ENV = outputs.BACKUP_REASON_ENV
STARTED_BY = "tavari-base-reset"  # ECS's startedBy: who ran this task (at most 36 characters)


class DumpTaskError(RuntimeError):
    """The nightly job's task could not be started; the message says why."""


@dataclass(frozen=True)
class DumpTask:
    """Where and how to run the nightly job's task: what the stack passes the capture as ``--dump-task``."""

    cluster: str
    task_definition: str
    container: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> DumpTask:
        """From JSON {cluster, task_definition, container, subnets, security_groups}; one line when wrong."""
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("--dump-task is not JSON ({cluster, task_definition, container, subnets, "
                             "security_groups})") from None
        if not isinstance(data, dict):
            raise ValueError("--dump-task must be a JSON object")
        missing = [k for k in ("cluster", "task_definition", "container") if not isinstance(data.get(k), str)
                   or not data[k]]
        lists = [k for k in ("subnets", "security_groups") if not isinstance(data.get(k), list) or not data[k]
                 or not all(isinstance(v, str) and v for v in data[k])]
        if missing or lists:
            raise ValueError(f"--dump-task lacks {', '.join(missing + lists)} (strings; subnets and security_groups "
                             "non-empty lists)")
        return cls(data["cluster"], data["task_definition"], data["container"], tuple(data["subnets"]),
                   tuple(data["security_groups"]))


def run(ecs: Any, task: DumpTask, reason: str) -> str:
    """Start the nightly job's task with ``reason``; its ARN. Refused (DumpTaskError) when ECS did not
    start it — never a dump silently not taken."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = ecs.run_task(
            cluster=task.cluster, taskDefinition=task.task_definition, launchType="FARGATE", count=1,
            startedBy=STARTED_BY,
            networkConfiguration={"awsvpcConfiguration": {"subnets": list(task.subnets),
                                                          "securityGroups": list(task.security_groups),
                                                          "assignPublicIp": "ENABLED"}},
            overrides={"containerOverrides": [{"name": task.container,
                                               "environment": [{"name": REASON_ENV, "value": reason}]}]})
    except ClientError as err:
        error = err.response.get("Error", {})
        raise DumpTaskError(f"the nightly backup task {task.task_definition} could not be run: "
                            f"{error.get('Code', '')} {error.get('Message', '')}".strip()) from None
    except BotoCoreError as err:
        raise DumpTaskError(f"the nightly backup task {task.task_definition} could not be run: {err}") from None
    started = answer.get("tasks") or []
    if answer.get("failures") or not started:
        why = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')} {f.get('detail', '')}".strip()
                        for f in answer.get("failures") or []) or "no task started"
        raise DumpTaskError(f"the nightly backup task {task.task_definition} did not start: {why}")
    return started[0]["taskArn"]
