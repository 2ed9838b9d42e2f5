"""Tamper watch: a trail (or the one config names) and, in every region of every account that holds
protected resources, EventBridge rules on CloudTrail's record of the changes that would destroy or
blind the backups. The primary region's rules publish to the alert topic; the other regions'
rules forward to the primary region's default event bus, where one rule per kind publishes.

Why forward instead of a topic per region: one alert topic means one subscription list, one alert
router and one dead-letter queue; EventBridge delivers to an event bus in another region (and, with
the bus policy below, another account) in seconds, and the forwarded event keeps its original
region, account and detail, so the primary region's rule formats it like a local one.

Every rule has a fixed name under ``outputs.tamper_rule_prefix``: the watch rule must name its
siblings and itself (a generated name cannot appear in its own resource), and the daily monitor's
drift check finds them by name without a reference to this stack (which depends on the stacks it
watches, the database backups stack among them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from aws_cdk import Annotations, Aws, CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from backup_constructs.nag import grant_policy
from backup_constructs.tamper_watch import (
    KINDS,
    Protected,
    TamperTrail,
    TrailSettings,
    event_pattern,
    forwarded_pattern,
    tamper_rule,
    topic_target,
)
from tavari_dr.core import outputs
from tavari_dr.core.config import EnvironmentConfig

GLOBAL_STS_REGION = "us-east-1"


def trail_name_of(trail_arn: str) -> str:
    """arn:aws:cloudtrail:<region>:<account>:trail/<name> -> <name>"""
    return trail_arn.rsplit("/", 1)[-1]


def _rule_arn(region: str, account: str, name: str) -> str:
    return f"arn:{Aws.PARTITION}:events:{region}:{account}:rule/{name}"


class TamperWatchStack(Stack):
    """The primary region: the trail (unless config names one), the tamper rules on the alert topic,
    and one rule per kind for the events the other regions forward.

    protected: what this region holds. topic: the alert topic. trail: create this trail, or None
    when existing_trail_arn names one (its selectors are not ours: synth warns what it must log).
    data_event_bucket_names: the backup buckets (every region) whose write data events the trail
    must log; data_event_bucket_labels: how the synth warning names them (names are tokens at synth).
    remote: (region, account) of every other site that forwards here; forwarded_kinds: the kinds
    those sites watch (one primary rule each publishes what they forward).
    """

    def __init__(self, scope: Construct, construct_id: str, *, environment: str, runbook_url: str,
                 protected: Protected, topic: sns.ITopic, trail: TrailSettings | None,
                 existing_trail_arn: str | None, data_event_bucket_names: Sequence[str],
                 data_event_bucket_labels: Sequence[str], remote: Sequence[tuple[str, str]],
                 forwarded_kinds: Sequence[str], **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if (trail is None) == (existing_trail_arn is None):
            raise ValueError("give exactly one of trail and existing_trail_arn")
        self.trail = TamperTrail(self, "Trail", settings=trail) if trail is not None else None
        self.trail_arn: str = self.trail.trail_arn if self.trail is not None else existing_trail_arn  # type: ignore
        # The trail, its key and its bucket are protected like the rest: stopping or starving the trail
        # blinds every rule.
        name = trail.name if trail is not None else trail_name_of(self.trail_arn)
        protected = replace(protected, trails=(self.trail_arn, name))
        if self.trail is not None:
            protected = replace(protected, keys=(*protected.keys, self.trail.key.key_arn),
                                buckets=(*protected.buckets, self.trail.bucket.bucket_name))
        self.protected = protected
        self.data_event_bucket_arns = [f"arn:{self.partition}:s3:::{name}" for name in data_event_bucket_names]
        if self.trail is None:
            Annotations.of(self).add_warning_v2(
                "tavari:trail-data-events",
                f"security.trail_arn names {existing_trail_arn}: this app cannot change its event selectors, so "
                "that trail must log every management event and the write data events of the backup buckets "
                f"({'; '.join(data_event_bucket_labels)}), or the object tamper rules see nothing "
                "(README: tamper watch).")
        self.rules: dict[str, events.Rule] = {}
        for kind in protected.kinds():
            self.rules[kind] = tamper_rule(
                self, f"Tamper{_camel(kind)}", name=protected.rule_prefix + kind, kind=kind,
                pattern=event_pattern(kind, protected, self.region),
                target=topic_target(topic, kind, environment=environment, runbook_url=runbook_url),
                description=f"Tamper watch ({kind}) in {self.region}: alert topic")
        regions = sorted({region for region, _ in remote})
        accounts = sorted({account for _, account in remote})
        for kind in forwarded_kinds:
            self.rules[f"forwarded-{kind}"] = tamper_rule(
                self, f"Forwarded{_camel(kind)}", name=f"{protected.rule_prefix}forwarded-{kind}", kind=kind,
                pattern=forwarded_pattern(kind, regions, accounts),
                target=topic_target(topic, kind, environment=environment, runbook_url=runbook_url),
                description=f"Tamper watch ({kind}) forwarded from {', '.join(regions)}: alert topic")
        for account in accounts:
            if account != self.account:
                # Another account's rules forward into this bus (a backup account's DR region).
                sid = f"tavari-{environment}-tamper-{account}"
                events.CfnEventBusPolicy(self, f"AcceptTamperEventsFrom{account}", event_bus_name="default",
                                         statement_id=sid, statement={
                                             "Sid": sid, "Effect": "Allow", "Action": "events:PutEvents",
                                             "Principal": {"AWS": f"arn:{self.partition}:iam::{account}:root"},
                                             "Resource": f"arn:{self.partition}:events:{self.region}:{self.account}"
                                                         ":event-bus/default"})
        CfnOutput(self, outputs.TRAIL_ARN, value=self.trail_arn,
                  description="The trail the tamper rules depend on")


class TamperWatchRemoteStack(Stack):
    """Another region (or the backup account) holding protected resources, or us-east-1, where
    CloudTrail records STS calls to the global endpoint that come from outside AWS: its tamper rules
    forward every match to the primary region's default bus. trail: create one here (a backup
    account without an organization trail), else None."""

    def __init__(self, scope: Construct, construct_id: str, *, protected: Protected, primary_bus_arn: str,
                 trail: TrailSettings | None = None, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.trail = TamperTrail(self, "Trail", settings=trail) if trail is not None else None
        if self.trail is not None:
            protected = replace(protected, trails=(self.trail.trail_arn, trail.name),  # type: ignore[union-attr]
                                keys=(*protected.keys, self.trail.key.key_arn),
                                buckets=(*protected.buckets, self.trail.bucket.bucket_name))
        self.protected = protected
        bus = events.EventBus.from_event_bus_arn(self, "PrimaryBus", primary_bus_arn)
        role = iam.Role(self, "ForwardRole", assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                        description="EventBridge forwards tamper events to the primary region's default bus")
        self.rules: dict[str, events.Rule] = {}
        for kind in protected.kinds():
            self.rules[kind] = tamper_rule(
                self, f"Tamper{_camel(kind)}", name=protected.rule_prefix + kind, kind=kind,
                pattern=event_pattern(kind, protected, self.region), target=targets.EventBus(bus, role=role),
                description=f"Tamper watch ({kind}) in {self.region}: forwarded to {primary_bus_arn}")
        grant_policy(role)


def _camel(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("-"))


@dataclass(frozen=True)
class RemoteSite:
    """A stack of the tamper watch outside the primary region: where, in which account, what it holds."""

    purpose: str            # stack purpose suffix: Dr, Global, BackupDr, BackupGlobal
    region: str
    account: str | None     # None: the primary account of an environment without one (dev)
    protected: Protected
    trail: TrailSettings | None = None
    checked: bool = True    # in the primary account: the daily monitor's drift check reads it


@dataclass
class TamperWatch:
    """The tamper watch of one environment: its stacks and what the drift check expects of them."""

    primary: TamperWatchStack
    remote: list[TamperWatchRemoteStack]
    expectation: dict[str, Any]

    @property
    def stacks(self) -> list[Stack]:
        return [*self.remote, self.primary]

    def wire_drift_check(self, daily_monitor: lambda_.Function, role: iam.IRole) -> None:
        """The daily monitor checks the trail logs and every rule in the primary account is enabled with
        its target: its expectation in its environment, read-only access to exactly these resources."""
        stack = Stack.of(daily_monitor)
        daily_monitor.add_environment("TAVARI_TAMPER_WATCH", stack.to_json_string(self.expectation))
        arns = [_rule_arn(region, Aws.ACCOUNT_ID, name)
                for region, names in self.expectation["rules"].items() for name in names]
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["events:DescribeRule", "events:ListTargetsByRule"], resources=arns))
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors"],
            resources=[self.expectation["trail_arn"]]))


def build_tamper_watch(app: Construct, config: EnvironmentConfig, *, protected_primary: Protected,
                       remote_sites: Sequence[RemoteSite], topic: sns.ITopic, data_event_bucket_names: Sequence[str],
                       data_event_bucket_labels: Sequence[str], removal_policy: RemovalPolicy,
                       common: dict[str, Any]) -> TamperWatch:
    """The primary stack and one stack per remote site; their dependencies follow their references."""
    env_name = config.name
    created = None
    if config.security.trail_arn is None:
        created = TrailSettings(name=outputs.tamper_trail_name(env_name), data_event_buckets=data_event_bucket_names,
                                retention=Duration.days(config.monitoring.log_retention_days),
                                removal_policy=removal_policy)
    primary_bus_arn = f"arn:{Aws.PARTITION}:events:{config.region}:{config.account or Aws.ACCOUNT_ID}:event-bus/default"
    remote = []
    for site in remote_sites:
        remote.append(TamperWatchRemoteStack(
            app, config.stack_name(outputs.TAMPER_WATCH + site.purpose),
            description=f"Tavari {env_name}: tamper alarms in {site.region} (forwarded to {config.region})",
            env=Environment(account=site.account, region=site.region), protected=site.protected,
            primary_bus_arn=primary_bus_arn, trail=site.trail, **common))
    forwarded = [kind for kind in KINDS if any(kind in site.protected.kinds() for site in remote_sites)]
    primary = TamperWatchStack(
        app, config.stack_name(outputs.TAMPER_WATCH),
        description=f"Tavari {env_name}: trail and tamper alarms (KMS, S3, secrets, trail, break-glass)",
        env=Environment(account=config.account, region=config.region), environment=env_name,
        runbook_url=config.monitoring.runbook_url, protected=protected_primary, topic=topic, trail=created,
        existing_trail_arn=config.security.trail_arn, data_event_bucket_names=data_event_bucket_names,
        data_event_bucket_labels=data_event_bucket_labels,
        remote=[(site.region, site.account or config.account or Aws.ACCOUNT_ID) for site in remote_sites],
        forwarded_kinds=forwarded, **common)
    for stack in remote:
        stack.add_stack_dependency(primary, "the primary region's rules publish what is forwarded, and its bus policy "
                                      "admits another account's events")
    account = config.account or Aws.ACCOUNT_ID
    prefix = protected_primary.rule_prefix
    rules = {config.region: [prefix + key for key in primary.rules]}
    for site, stack in zip(remote_sites, remote, strict=True):
        if site.checked:
            rules[site.region] = [prefix + key for key in stack.rules]
    expectation = {
        "rule_prefix": protected_primary.rule_prefix,
        "primary_region": config.region,
        "rules": rules,
        "targets": {region: (f"arn:{Aws.PARTITION}:sns:{config.region}:{account}:" if region == config.region
                             else primary_bus_arn) for region in rules},
        "trail_arn": primary.trail_arn,
        "trail_created": created is not None,
        "data_event_bucket_arns": primary.data_event_bucket_arns,
    }
    CfnOutput(primary, outputs.TAMPER_WATCH_EXPECTATION, value=primary.to_json_string(expectation),
              description="What the daily monitor's tamper_watch check expects (tavari-dr verify reads it)")
    return TamperWatch(primary=primary, remote=remote, expectation=expectation)
