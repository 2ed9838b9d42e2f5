"""Deploy the app's synthesized templates into a local AWS emulator (moto server).

moto's CloudFormation creates only the resource types it models and, for those, only some
properties (an S3 bucket keeps its encryption and tags; versioning, lifecycle, replication,
Object Lock, logging and public-access settings are dropped without a word). So this deployer
applies each resource the drill relies on itself, through the service APIs, from the same
template: every intrinsic function is resolved here (Ref, GetAtt, Join, Sub, Select, Split,
ImportValue, GetStackOutput), Custom:: resources are resolved here too, and each stack's
outputs are registered in the emulator's CloudFormation so `tavari-dr` finds resources exactly
as it does in AWS.

What moto's CloudFormation would have ignored is asked of moto at run time (``probe``): the
resource types its CloudFormation models, and, per bucket property, a one-bucket stack deployed
through it and read back. The report lists, per stack, what was applied, what moto alone would
have dropped, and everything this deployer did not apply (with the reason).

One module over 400 lines: the deployer is one loop over the templates and a table of small
appliers, one per resource type (``_bucket``, ``_secret``, ...), which share the intrinsic-function
resolver and the report; split apart, each applier would need all of that back.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NO_VALUE = object()
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")

# Types the drill does not need in the emulator, and why (anything else unhandled is reported as such).
NOT_NEEDED = {
    "AWS::CDK::Metadata": "CDK's own metadata",
    "AWS::Lambda::Function": "the drill runs handlers in-process (the emulator cannot run Lambdas without Docker)",
    "AWS::Lambda::Permission": "no Lambda runs in the emulator",
    "AWS::Lambda::EventInvokeConfig": "no Lambda runs in the emulator",
    "AWS::CloudWatch::Dashboard": "presentation only",
    "AWS::Scheduler::Schedule": "the drill runs the scheduled jobs itself, in order",
    "AWS::ECS::Cluster": "the drill runs the job's command (tavari-dr ...) itself instead of a Fargate task",
    "AWS::ECS::TaskDefinition": "the drill runs the job's command (tavari-dr ...) itself instead of a Fargate task",
    "AWS::StepFunctions::StateMachine": "the drill plays the quarterly drill's steps itself",
}
NETWORK_PREFIXES = ("AWS::EC2::",)
API_PREFIX = "AWS::ApiGatewayV2::"


class DeployError(RuntimeError):
    pass


# --------------------------------------------------------------------------- what moto's CloudFormation does


@dataclass
class MotoSupport:
    resource_types: set[str]
    bucket_properties: dict[str, bool]  # property -> moto's CloudFormation applied it

    def ignores_type(self, resource_type: str) -> bool:
        return resource_type not in self.resource_types

    def ignores_property(self, prop: str) -> bool | None:
        return None if prop not in self.bucket_properties else not self.bucket_properties[prop]


def _probe_values(log_bucket: str) -> dict[str, tuple[dict[str, Any], Callable[[Any, str], bool]]]:
    def has(call: Callable[[], Any], check: Callable[[Any], bool] = lambda _: True) -> bool:
        try:
            return bool(check(call()))
        except Exception:  # the emulator answers "no such configuration" with a ClientError
            return False

    return {
        "VersioningConfiguration": ({"VersioningConfiguration": {"Status": "Enabled"}},
                                    lambda s3, b: has(lambda: s3.get_bucket_versioning(Bucket=b),
                                                      lambda r: r.get("Status") == "Enabled")),
        "LifecycleConfiguration": ({"LifecycleConfiguration": {"Rules": [
            {"Id": "probe", "Status": "Enabled", "ExpirationInDays": 1}]}},
            lambda s3, b: has(lambda: s3.get_bucket_lifecycle_configuration(Bucket=b))),
        "ReplicationConfiguration": ({"VersioningConfiguration": {"Status": "Enabled"}, "ReplicationConfiguration": {
            "Role": "arn:aws:iam::123456789012:role/probe", "Rules": [
                {"Status": "Enabled", "Prefix": "", "Destination": {"Bucket": f"arn:aws:s3:::{log_bucket}"}}]}},
            lambda s3, b: has(lambda: s3.get_bucket_replication(Bucket=b))),
        "ObjectLockEnabled": ({"ObjectLockEnabled": True},
                              lambda s3, b: has(lambda: s3.get_object_lock_configuration(Bucket=b),
                                                lambda r: r["ObjectLockConfiguration"]["ObjectLockEnabled"]
                                                == "Enabled")),
        "BucketEncryption": ({"BucketEncryption": {"ServerSideEncryptionConfiguration": [{
            "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "probe-key"}}]}},
            lambda s3, b: has(lambda: s3.get_bucket_encryption(Bucket=b),
                              lambda r: "probe-key" in json.dumps(r["ServerSideEncryptionConfiguration"]))),
        "PublicAccessBlockConfiguration": ({"PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True}},
            lambda s3, b: has(lambda: s3.get_public_access_block(Bucket=b))),
        "OwnershipControls": ({"OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}},
                              lambda s3, b: has(lambda: s3.get_bucket_ownership_controls(Bucket=b))),
        "LoggingConfiguration": ({"LoggingConfiguration": {"DestinationBucketName": log_bucket,
                                                           "LogFilePrefix": "probe/"}},
                                 lambda s3, b: has(lambda: s3.get_bucket_logging(Bucket=b),
                                                   lambda r: "LoggingEnabled" in r)),
        "Tags": ({"Tags": [{"Key": "probe", "Value": "yes"}]},
                 lambda s3, b: has(lambda: s3.get_bucket_tagging(Bucket=b), lambda r: r.get("TagSet"))),
    }


def probe(client: Callable[..., Any], region: str) -> MotoSupport:
    """Ask moto (this process's moto package, the same the server runs) which resource types its
    CloudFormation models, and deploy one bucket per property through it to see what it keeps."""
    from moto.cloudformation.parsing import NULL_MODELS, get_model_map

    from tavari_dr.drill.moto_server import ALARM_TYPES

    # (the alarm types: moto models none; its server here only lists them, see tavari_dr.drill.moto_server)
    types = set(get_model_map()) - set(NULL_MODELS) - set(ALARM_TYPES)
    cfn, s3 = client("cloudformation", region), client("s3", region)
    log_bucket = f"probe-logs-{_suffix()}"
    s3.create_bucket(Bucket=log_bucket, **_location(region))
    applied = {}
    for prop, (properties, read_back) in _probe_values(log_bucket).items():
        name = f"probe-{prop.lower()[:30]}-{_suffix()}"
        stack = f"MotoProbe{prop}"
        template = {"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": name, **properties}}}}
        try:
            cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template))
            applied[prop] = read_back(s3, name)
        except Exception:
            applied[prop] = False
    return MotoSupport(resource_types=types, bucket_properties=applied)


def _suffix(n: int = 8) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def _location(region: str) -> dict[str, Any]:
    return {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}


# --------------------------------------------------------------------------- the deployer


@dataclass
class StackReport:
    name: str
    region: str
    applied: list[dict[str, str]] = field(default_factory=list)
    not_applied: list[dict[str, str]] = field(default_factory=list)
    moto_would_ignore: list[str] = field(default_factory=list)  # "Type" or "Type.Property" per resource
    errors: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    # Lambda description -> its resolved environment: the drill runs handlers in-process with it.
    functions: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Deployment:
    stacks: dict[str, StackReport]
    support: MotoSupport

    def outputs(self, stack: str) -> dict[str, str]:
        return self.stacks[stack].outputs

    def to_json(self) -> dict[str, Any]:
        return {"moto": {"resource_types_modelled": len(self.support.resource_types),
                         "bucket_properties": self.support.bucket_properties},
                "stacks": {name: report.__dict__ for name, report in self.stacks.items()}}

    def ignored_by_moto(self) -> list[str]:
        return sorted({item for r in self.stacks.values() for item in r.moto_would_ignore})


class _Unresolved(str):
    """A value from a resource this deployer did not create (kept as a readable placeholder)."""


class _Stack:
    def __init__(self, deployer: LocalDeployer, name: str, region: str, account: str,
                 template: dict[str, Any]) -> None:
        self.deployer, self.name, self.region, self.account = deployer, name, region, account
        self.template = template
        self.physical: dict[str, Any] = {}
        self.attributes: dict[str, dict[str, Any]] = {}
        self.report = StackReport(name=name, region=region)
        self.deferred: list[Callable[[], None]] = []  # settings that need the whole stack in place

    # ------------------------------------------------------------------ intrinsic functions

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(x) for x in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(logical, attribute)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(p) for p in self.resolve(parts))
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if key == "Fn::ImportValue":
                return self.deployer.exports.get(self.resolve(arg), _Unresolved(f"<import {arg}>"))
            if key == "Fn::GetStackOutput":
                stack = self.deployer.stacks.get(self.resolve(arg["StackName"]))
                if stack is None:
                    return _Unresolved(f"<{arg['StackName']}.{arg['OutputName']}>")
                return stack.report.outputs.get(arg["OutputName"], _Unresolved(f"<{arg['OutputName']}>"))
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _pseudo(self, name: str) -> Any:
        return {"AWS::AccountId": self.account, "AWS::Region": self.region, "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": self.name, "AWS::NoValue": NO_VALUE,
                "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.name}/local"
                }.get(name)

    def _ref(self, name: str) -> Any:
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.physical:
            return self.physical[name]
        return _Unresolved(f"<{name}>")

    def _get_att(self, logical: str, attribute: str) -> Any:
        return self.attributes.get(logical, {}).get(attribute, _Unresolved(f"<{logical}.{attribute}>"))

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical, attribute = name.split(".", 1)
                return str(self._get_att(logical, attribute))
            return str(self._ref(name))

        return _SUB.sub(replace, text)

    # ------------------------------------------------------------------ order

    def order(self) -> list[str]:
        resources = self.template.get("Resources", {})
        deps = {logical: _references(resource, resources) for logical, resource in resources.items()}
        done: list[str] = []
        seen: set[str] = set()

        def visit(logical: str, path: tuple[str, ...]) -> None:
            if logical in seen:
                return
            if logical in path:
                raise DeployError(f"{self.name}: circular reference through {logical}")
            for dep in sorted(deps[logical]):
                visit(dep, (*path, logical))
            seen.add(logical)
            done.append(logical)

        for logical in sorted(resources):
            visit(logical, ())
        return done


def _references(resource: dict[str, Any], resources: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    depends = resource.get("DependsOn", [])
    found.update([depends] if isinstance(depends, str) else depends)

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "Ref" in value and isinstance(value["Ref"], str):
                found.add(value["Ref"])
            if "Fn::GetAtt" in value:
                target = value["Fn::GetAtt"]
                found.add(target[0] if isinstance(target, list) else target.split(".")[0])
            if "Fn::Sub" in value:
                text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
                found.update(m.split(".")[0] for m in _SUB.findall(text))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(resource.get("Properties", {}))
    return {f for f in found if f in resources}


class LocalDeployer:
    """Deploys one environment's cdk.out into the emulator at ``endpoint_url``."""

    def __init__(self, endpoint_url: str, *, credentials: tuple[str, str] = ("drill", "drill")) -> None:
        self.endpoint_url, self.credentials = endpoint_url, credentials
        self.stacks: dict[str, _Stack] = {}
        self.exports: dict[str, Any] = {}
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str) -> Any:
        from tavari_dr.core import aws

        key = (service, region)
        if key not in self._clients:
            self._clients[key] = aws.client(
                service, region=region, endpoint_url=self.endpoint_url, aws_access_key_id=self.credentials[0],
                aws_secret_access_key=self.credentials[1])
        return self._clients[key]

    def deploy(self, cdk_out: Path, *, progress: Callable[[str], None] = lambda _: None) -> Deployment:
        manifest = json.loads((cdk_out / "manifest.json").read_text())
        artifacts = {name: a for name, a in manifest["artifacts"].items() if a["type"] == "aws:cloudformation:stack"}
        if not artifacts:
            raise DeployError(f"{cdk_out} holds no stacks; run `make synth` first")
        first_region = next(iter(artifacts.values()))["environment"].split("/")[-1]
        support = probe(self.client, first_region)
        for name in _stack_order(artifacts):
            artifact = artifacts[name]
            account, region = artifact["environment"].removeprefix("aws://").split("/")
            if account == "unknown-account":  # an environment-agnostic stack: AWS::AccountId is the deployer's
                account = self._account()
            template = json.loads((cdk_out / artifact["properties"]["templateFile"]).read_text())
            stack = _Stack(self, name, region, account, template)
            self.stacks[name] = stack
            self._deploy_stack(stack, support)
            progress(f"{name} ({region}): {len(stack.report.applied)} applied, "
                     f"{len(stack.report.not_applied)} not applied")
        return Deployment({n: s.report for n, s in self.stacks.items()}, support)

    def _account(self) -> str:
        if not hasattr(self, "_caller_account"):
            self._caller_account = self.client("sts", "us-east-1").get_caller_identity()["Account"]
        return self._caller_account

    def _deploy_stack(self, stack: _Stack, support: MotoSupport) -> None:
        resources = stack.template.get("Resources", {})
        for logical in stack.order():
            resource = resources[logical]
            kind = resource["Type"]
            if support.ignores_type(kind) and kind != "AWS::CDK::Metadata":
                stack.report.moto_would_ignore.append(kind)
            handler = _HANDLERS.get(kind)
            if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
                handler = _custom_resource
            if handler is None:
                reason = NOT_NEEDED.get(kind) or (
                    "networking: the drill reaches the emulator and PostgreSQL on loopback"
                    if kind.startswith(NETWORK_PREFIXES) else
                    "the export API is not part of a recovery; its handlers are tested in-process"
                    if kind.startswith(API_PREFIX) else "not handled by the local deployer")
                stack.report.not_applied.append({"logical_id": logical, "type": kind, "reason": reason})
                _placeholder(stack, logical, kind)
                if kind == "AWS::Lambda::Function":
                    properties = stack.resolve(resource.get("Properties", {}))
                    stack.report.functions[str(properties.get("Description", logical))] = {
                        k: str(v) for k, v in properties.get("Environment", {}).get("Variables", {}).items()}
                continue
            try:
                properties = stack.resolve(resource.get("Properties", {}))
                handler(self, stack, logical, properties, support)
                stack.report.applied.append({"logical_id": logical, "type": kind,
                                             "physical_id": str(stack.physical.get(logical))})
            except Exception as error:  # reported, never hidden: the drill fails on deployment errors
                stack.report.errors.append(f"{logical} ({kind}): {type(error).__name__}: {error}")
                _placeholder(stack, logical, kind)
        for apply in stack.deferred:
            apply()
        for key, output in stack.template.get("Outputs", {}).items():
            value = stack.resolve(output["Value"])
            stack.report.outputs[key] = str(value)
            export = output.get("Export", {}).get("Name")
            if export:
                self.exports[stack.resolve(export)] = value
        self._register_outputs(stack)

    def _register_outputs(self, stack: _Stack) -> None:
        """A stack in the emulator's CloudFormation carrying the resolved outputs (the CLI's discovery) and
        its alarms by name with their definitions resolved (what `tavari-dr status` compares the account's
        alarms with: the moto server of tavari_dr.drill.moto_server lists them as CloudFormation does)."""
        alarms = {a["logical_id"]: {"Type": a["type"], "Properties": {
            **_declared(stack, a["logical_id"], a["type"]), "AlarmName": a["physical_id"]}}
                  for a in stack.report.applied if a["type"] in _ALARM_TYPES}
        template = {"Resources": {"Deployed": {"Type": "AWS::CloudFormation::WaitConditionHandle"}, **alarms},
                    "Outputs": {k: {"Value": v} for k, v in stack.report.outputs.items()}}
        self.client("cloudformation", stack.region).create_stack(StackName=stack.name,
                                                                TemplateBody=json.dumps(template))


def _stack_order(artifacts: dict[str, Any]) -> list[str]:
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in artifacts[name].get("dependencies", []):
            if dep in artifacts:
                visit(dep)
        order.append(name)

    for name in artifacts:
        visit(name)
    return order


def _arn(stack: _Stack, service: str, resource: str, *, region: bool = True) -> str:
    return f"arn:aws:{service}:{stack.region if region else ''}:{stack.account}:{resource}"


def _placeholder(stack: _Stack, logical: str, kind: str) -> None:
    """Names for a resource that was not created, so what references it still resolves (visibly)."""
    service = kind.split("::")[1].lower() if "::" in kind else "custom"
    arn = _arn(stack, service, f"{logical}-not-deployed")
    stack.physical[logical] = _Unresolved(arn)  # ARN-shaped, so policies naming it stay valid
    stack.attributes[logical] = _AnyAttribute(arn)


class _AnyAttribute(dict):
    def __init__(self, arn: str) -> None:
        super().__init__()
        self.arn = arn

    def get(self, key: str, default: Any = None) -> Any:  # every attribute of a placeholder is its ARN
        return _Unresolved(self.arn)


def _name(stack: _Stack, logical: str, limit: int = 63) -> str:
    base = re.sub(r"[^a-z0-9-]", "", f"{stack.name}-{logical}".lower())
    return f"{base[:limit - 9]}-{_suffix()}"


# --------------------------------------------------------------------------- resource handlers


def _kms_key(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    kms = d.client("kms", stack.region)
    kwargs = {"Description": p.get("Description", ""), "KeyUsage": p.get("KeyUsage", "ENCRYPT_DECRYPT"),
              "KeySpec": p.get("KeySpec", "SYMMETRIC_DEFAULT")}
    if p.get("KeyPolicy"):
        kwargs["Policy"] = json.dumps(p["KeyPolicy"])
    key = kms.create_key(**kwargs)["KeyMetadata"]
    if p.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=key["KeyId"])
    stack.physical[logical] = key["KeyId"]
    stack.attributes[logical] = {"Arn": key["Arn"], "KeyId": key["KeyId"]}


def _kms_alias(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    d.client("kms", stack.region).create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
    stack.physical[logical] = p["AliasName"]


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"]}
    conditions: dict[str, Any] = {}
    if "Prefix" in rule:
        conditions["Prefix"] = rule["Prefix"]
    if "ObjectSizeGreaterThan" in rule:
        conditions["ObjectSizeGreaterThan"] = int(rule["ObjectSizeGreaterThan"])
    if "ObjectSizeLessThan" in rule:
        conditions["ObjectSizeLessThan"] = int(rule["ObjectSizeLessThan"])
    if rule.get("TagFilters"):
        conditions["Tags"] = rule["TagFilters"]
    if len(conditions) > 1 or "Tags" in conditions:
        out["Filter"] = {"And": {**conditions, "Prefix": conditions.get("Prefix", "")}}
    else:
        out["Filter"] = conditions or {"Prefix": ""}
    if "ExpirationInDays" in rule or "ExpiredObjectDeleteMarker" in rule:
        out["Expiration"] = ({"Days": int(rule["ExpirationInDays"])} if "ExpirationInDays" in rule
                             else {"ExpiredObjectDeleteMarker": rule["ExpiredObjectDeleteMarker"]})
    if "NoncurrentVersionExpiration" in rule:
        expiration = rule["NoncurrentVersionExpiration"]
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(expiration["NoncurrentDays"]),
                                              **({"NewerNoncurrentVersions": int(expiration[
                                                  "NewerNoncurrentVersions"])}
                                                 if "NewerNoncurrentVersions" in expiration else {})}
    if "NoncurrentVersionTransitions" in rule:
        out["NoncurrentVersionTransitions"] = [
            {"NoncurrentDays": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
            for t in rule["NoncurrentVersionTransitions"]]
    if "Transitions" in rule:
        out["Transitions"] = [{"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
                              for t in rule["Transitions"]]
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
    return out


def _replication(config: dict[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in config["Rules"]:
        converted = {k: v for k, v in rule.items() if k != "Id"}
        if "Id" in rule:
            converted["ID"] = rule["Id"]
        rules.append(converted)
    return {"Role": config["Role"], "Rules": rules}


def _bucket(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], support: MotoSupport) -> None:
    s3 = d.client("s3", stack.region)
    name = p.get("BucketName") or _name(stack, logical)
    s3.create_bucket(Bucket=name, **_location(stack.region),
                     **({"ObjectLockEnabledForBucket": True} if p.get("ObjectLockEnabled") else {}))
    appliers: dict[str, Callable[[Any], Any]] = {
        "VersioningConfiguration": lambda v: s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": v["Status"]}),
        "BucketEncryption": lambda v: s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                       **({"BucketKeyEnabled": r["BucketKeyEnabled"]} if "BucketKeyEnabled" in r else {})}
                      for r in v["ServerSideEncryptionConfiguration"]]}),
        "PublicAccessBlockConfiguration": lambda v: s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=v),
        "OwnershipControls": lambda v: s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=v),
        "LifecycleConfiguration": lambda v: s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in v["Rules"]]}),
        "LoggingConfiguration": lambda v: s3.put_bucket_logging(Bucket=name, BucketLoggingStatus={"LoggingEnabled": {
            "TargetBucket": v["DestinationBucketName"], "TargetPrefix": v.get("LogFilePrefix", "")}}),
        "ReplicationConfiguration": lambda v: s3.put_bucket_replication(
            Bucket=name, ReplicationConfiguration=_replication(v)),
        "ObjectLockConfiguration": lambda v: s3.put_object_lock_configuration(
            Bucket=name, ObjectLockConfiguration=v),
        "Tags": lambda v: s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": v}),
        "ObjectLockEnabled": lambda v: None,  # at creation
        "BucketName": lambda v: None,
    }
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com",
                                 "RegionalDomainName": f"{name}.s3.{stack.region}.amazonaws.com"}

    def apply(prop: str) -> None:
        try:
            appliers[prop](p[prop])
        except Exception as error:
            stack.report.not_applied.append({"logical_id": logical, "type": f"AWS::S3::Bucket.{prop}",
                                             "reason": f"the emulator refused it: {error}"})

    # Versioning before replication and lifecycle (S3 requires it), the rest in template order.
    for prop in sorted(p, key=lambda k: k != "VersioningConfiguration"):
        if support.ignores_property(prop):
            stack.report.moto_would_ignore.append(f"AWS::S3::Bucket.{prop}")
        if prop not in appliers:
            stack.report.not_applied.append({"logical_id": logical, "type": f"AWS::S3::Bucket.{prop}",
                                             "reason": "property not handled by the local deployer"})
        elif prop == "LoggingConfiguration":  # the log bucket's policy (another resource) must exist first
            stack.deferred.append(lambda prop=prop: apply(prop))
        else:
            apply(prop)


def _bucket_policy(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    """The whole policy, as CloudFormation would put it. moto evaluates no request condition, so the
    drill's server (tavari_dr.drill.moto_server) holds a conditional Deny (TLS only, conditional
    writes, the custodians' exemption) without enforcing it; each one is reported."""
    document = dict(p["PolicyDocument"])
    for statement in document["Statement"]:
        if statement.get("Effect") == "Deny" and statement.get("Condition"):
            stack.report.not_applied.append({
                "logical_id": logical, "type": "AWS::S3::BucketPolicy.Statement",
                "reason": f"Deny {statement.get('Action')} when {json.dumps(statement['Condition'])}: held and read "
                          "back, not enforced (the emulator evaluates no request condition)"})
    d.client("s3", stack.region).put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(document))
    stack.physical[logical] = f"{p['Bucket']}-policy"


def _secret(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    client = d.client("secretsmanager", stack.region)
    value = p.get("SecretString")
    generate = p.get("GenerateSecretString")
    if value is None and generate:
        generated = "".join(secrets.choice(string.ascii_letters + string.digits)
                            for _ in range(int(generate.get("PasswordLength", 32))))
        if "SecretStringTemplate" in generate:
            document = json.loads(generate["SecretStringTemplate"])
            document[generate["GenerateStringKey"]] = generated
            value = json.dumps(document)
        else:
            value = generated
    kwargs: dict[str, Any] = {"Name": p.get("Name") or _name(stack, logical, 200), "SecretString": value or ""}
    for key in ("Description", "KmsKeyId"):
        if key in p:
            kwargs[key] = p[key]
    if p.get("ReplicaRegions"):
        kwargs["AddReplicaRegions"] = [{"Region": r["Region"], **({"KmsKeyId": r["KmsKeyId"]} if "KmsKeyId" in r
                                                                   else {})} for r in p["ReplicaRegions"]]
    if p.get("Tags"):
        kwargs["Tags"] = p["Tags"]
    arn = client.create_secret(**kwargs)["ARN"]
    stack.physical[logical] = arn
    stack.attributes[logical] = {"Id": arn}


def _secret_policy(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    d.client("secretsmanager", stack.region).put_resource_policy(SecretId=p["SecretId"],
                                                                  ResourcePolicy=json.dumps(p["ResourcePolicy"]))
    stack.physical[logical] = f"{p['SecretId']}-policy"


def _table(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    ddb = d.client("dynamodb", stack.region)
    name = p.get("TableName") or _name(stack, logical, 255)
    ddb.create_table(TableName=name, KeySchema=p["KeySchema"], AttributeDefinitions=p["AttributeDefinitions"],
                     BillingMode=p.get("BillingMode", "PAY_PER_REQUEST"))
    if p.get("TimeToLiveSpecification"):
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=p["TimeToLiveSpecification"])
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": _arn(stack, "dynamodb", f"table/{name}")}


def _topic(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    attributes = {"KmsMasterKeyId": p["KmsMasterKeyId"]} if "KmsMasterKeyId" in p else {}
    arn = d.client("sns", stack.region).create_topic(Name=p.get("TopicName") or _name(stack, logical, 256),
                                                     Attributes=attributes)["TopicArn"]
    stack.physical[logical] = arn
    stack.attributes[logical] = {"TopicArn": arn, "TopicName": arn.rsplit(":", 1)[1]}


def _queue(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    sqs = d.client("sqs", stack.region)
    name = p.get("QueueName") or _name(stack, logical, 80)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    stack.physical[logical] = url
    stack.attributes[logical] = {"Arn": _arn(stack, "sqs", name), "QueueName": name, "QueueUrl": url}


def _trail(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    """The tamper watch's trail, logging, with its selectors: what the daily monitor's check reads."""
    trails = d.client("cloudtrail", stack.region)
    name = p.get("TrailName") or _name(stack, logical, 128)
    arn = trails.create_trail(Name=name, S3BucketName=p["S3BucketName"],
                              IsMultiRegionTrail=bool(p.get("IsMultiRegionTrail")),
                              IncludeGlobalServiceEvents=bool(p.get("IncludeGlobalServiceEvents")),
                              EnableLogFileValidation=bool(p.get("EnableLogFileValidation")),
                              **({"KmsKeyId": str(p["KMSKeyId"])} if p.get("KMSKeyId") else {}))["TrailARN"]
    if p.get("AdvancedEventSelectors"):
        trails.put_event_selectors(TrailName=name, AdvancedEventSelectors=p["AdvancedEventSelectors"])
    elif p.get("EventSelectors"):
        trails.put_event_selectors(TrailName=name, EventSelectors=p["EventSelectors"])
    if p.get("IsLogging", True):
        trails.start_logging(Name=name)
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": arn}


def _rule(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    """An EventBridge rule and its targets (the tamper watch): enabled and pointed where the template says."""
    events = d.client("events", stack.region)
    name = p.get("Name") or _name(stack, logical, 64)
    arn = events.put_rule(Name=name, EventPattern=json.dumps(p["EventPattern"]), State=p.get("State", "ENABLED"),
                          Description=p.get("Description", ""))["RuleArn"]
    keys = ("Id", "Arn", "RoleArn", "Input", "InputPath", "InputTransformer")
    rule_targets = [{k: (str(v) if k in ("Arn", "RoleArn") else v) for k, v in t.items() if k in keys}
                    for t in p.get("Targets", [])]
    if rule_targets:
        events.put_targets(Rule=name, Targets=rule_targets)
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": arn}


def _log_group(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    logs = d.client("logs", stack.region)
    name = p.get("LogGroupName") or f"/tavari/{_name(stack, logical, 200)}"
    logs.create_log_group(logGroupName=name)
    if p.get("RetentionInDays"):
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": _arn(stack, "logs", f"log-group:{name}:*")}


def _role(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    iam = d.client("iam", stack.region)
    name = p.get("RoleName") or _name(stack, logical, 64)
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
                           Description=p.get("Description", ""))["Role"]
    for policy in p.get("Policies", []):
        iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                            PolicyDocument=json.dumps(policy["PolicyDocument"]))
    for arn in p.get("ManagedPolicyArns", []):
        if not isinstance(arn, _Unresolved):
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": role["Arn"], "RoleId": role["RoleId"]}


def _policy(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    iam = d.client("iam", stack.region)
    for role in p.get("Roles", []):
        iam.put_role_policy(RoleName=role, PolicyName=p["PolicyName"], PolicyDocument=json.dumps(p["PolicyDocument"]))
    stack.physical[logical] = p["PolicyName"]


def _managed_policy(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    iam = d.client("iam", stack.region)
    arn = iam.create_policy(PolicyName=p.get("ManagedPolicyName") or _name(stack, logical, 128),
                            PolicyDocument=json.dumps(p["PolicyDocument"]))["Policy"]["Arn"]
    for role in p.get("Roles", []):
        iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    stack.physical[logical] = arn


def _subscription(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    arn = d.client("sns", stack.region).subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"],
                                                  Endpoint=str(p["Endpoint"]))["SubscriptionArn"]
    stack.physical[logical] = arn


def _topic_policy(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    for topic in p["Topics"]:
        d.client("sns", stack.region).set_topic_attributes(TopicArn=topic, AttributeName="Policy",
                                                           AttributeValue=json.dumps(p["PolicyDocument"]))
    stack.physical[logical] = f"{logical}-policy"


def _queue_policy(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    for queue in p["Queues"]:
        d.client("sqs", stack.region).set_queue_attributes(QueueUrl=queue,
                                                           Attributes={"Policy": json.dumps(p["PolicyDocument"])})
    stack.physical[logical] = f"{logical}-policy"


_ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")  # as moto_server.ALARM_TYPES
# The template's alarm properties that PutMetricAlarm takes under the same name (AlarmName is the deployer's).
_ALARM_PROPERTIES = ("AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions", "InsufficientDataActions",
                     "MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit",
                     "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator",
                     "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics", "ThresholdMetricId", "Tags")
_COMPOSITE_PROPERTIES = ("AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
                         "InsufficientDataActions", "AlarmRule", "ActionsSuppressor", "ActionsSuppressorWaitPeriod",
                         "ActionsSuppressorExtensionPeriod")


def _str_values(value: Any) -> Any:
    """Resolved values as the API takes them: an unresolved reference (a Lambda's name) stays readable text."""
    if isinstance(value, dict):
        return {k: _str_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_str_values(v) for v in value]
    return str(value) if isinstance(value, str) else value


def _declared(stack: _Stack, logical: str, kind: str) -> dict[str, Any]:
    """An alarm's template properties as this deployer applied them (resolved): what GetTemplate answers
    for the registered stack, so `tavari-dr status` compares the alarm with its declaration."""
    p = stack.resolve(stack.template["Resources"][logical].get("Properties", {}))
    names = _COMPOSITE_PROPERTIES if kind == "AWS::CloudWatch::CompositeAlarm" else _ALARM_PROPERTIES
    return {k: _str_values(p[k]) for k in names if k in p and k != "Tags"}


def _alarm(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    """A metric alarm as the template declares it (moto models alarms; it never evaluates them, so each
    stays INSUFFICIENT_DATA unless a test sets its state)."""
    name = str(p.get("AlarmName") or _name(stack, logical, 255))
    args = {k: _str_values(p[k]) for k in _ALARM_PROPERTIES if k in p}
    if "Threshold" in args:
        args["Threshold"] = float(args["Threshold"])
    d.client("cloudwatch", stack.region).put_metric_alarm(AlarmName=name, **args)
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": _arn(stack, "cloudwatch", f"alarm:{name}")}


def _composite_alarm(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    name = str(p.get("AlarmName") or _name(stack, logical, 255))
    args = {k: _str_values(p[k]) for k in _COMPOSITE_PROPERTIES if k in p}
    d.client("cloudwatch", stack.region).put_composite_alarm(AlarmName=name, **args)
    stack.physical[logical] = name
    stack.attributes[logical] = {"Arn": _arn(stack, "cloudwatch", f"alarm:{name}")}


def _custom_resource(d: LocalDeployer, stack: _Stack, logical: str, p: dict[str, Any], _: MotoSupport) -> None:
    """A Lambda-backed custom resource never completes without Docker: it resolves to its own
    properties (the CDK pattern of passing values through), and says so in the report."""
    stack.physical[logical] = f"{logical}-local"
    stack.attributes[logical] = {k: v for k, v in p.items() if k != "ServiceToken"}
    stack.report.not_applied.append({"logical_id": logical, "type": "custom resource handler",
                                     "reason": "resolved by the deployer to its input properties; its "
                                               "Lambda did not run"})


_HANDLERS: dict[str, Callable[[LocalDeployer, _Stack, str, dict[str, Any], MotoSupport], None]] = {
    "AWS::KMS::Key": _kms_key,
    "AWS::KMS::Alias": _kms_alias,
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::SecretsManager::ResourcePolicy": _secret_policy,
    "AWS::DynamoDB::Table": _table,
    "AWS::SNS::Topic": _topic,
    "AWS::SNS::Subscription": _subscription,
    "AWS::SNS::TopicPolicy": _topic_policy,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::SQS::Queue": _queue,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::CloudTrail::Trail": _trail,
    "AWS::Events::Rule": _rule,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::CloudWatch::CompositeAlarm": _composite_alarm,
    "AWS::IAM::Role": _role,
    "AWS::IAM::Policy": _policy,
    "AWS::IAM::ManagedPolicy": _managed_policy,
}
