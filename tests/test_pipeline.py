"""The road to production: the DeployRoles stack's trust and reach, the workflow (linted, and in step with
cdk.json), the placeholder-account guard on the deploy path, and the pipeline's configuration."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aws_cdk import App, RemovalPolicy
from aws_cdk.assertions import Match, Template

from stacks.deploy_roles import DEPLOY_BOOTSTRAP_ROLES, DeployRolesStack, DeployTarget
from tavari_dr.core.config import (
    DEPLOY_CONTEXT_KEY,
    PLACEHOLDER_ACCOUNT,
    ConfigError,
    PipelineConfig,
    SecurityConfig,
    load_environment,
    refuse_placeholder_accounts,
)
from tests.conftest import ROOT, cdk_context

WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"
REPO = "tavari/backup-recovery"


def pipeline_environments() -> dict[str, PipelineConfig]:
    """cdk.json's environments that GitHub Actions deploys, with their pipeline settings."""
    context = cdk_context()
    configs = {name: load_environment(context, name) for name in context["environments"]}
    return {name: c.pipeline for name, c in configs.items() if c.pipeline.enabled}


def workflow() -> dict:
    document = yaml.safe_load(WORKFLOW.read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as true
    return document


def statements(template: dict, logical_prefix: str, part: str) -> list[dict]:
    (resource,) = [r for k, r in template["Resources"].items() if k.startswith(logical_prefix)
                   and r["Type"] == ("AWS::IAM::Role" if part == "trust" else "AWS::IAM::ManagedPolicy")]
    document = resource["Properties"]["AssumeRolePolicyDocument" if part == "trust" else "PolicyDocument"]
    return document["Statement"]


def flat(value) -> str:
    """An ARN as CloudFormation would join it, pseudo parameters named."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(flat(v) for v in value["Fn::Join"][1])
    return "${" + value["Ref"] + "}"


# --------------------------------------------------------------------------- the roles


@pytest.mark.parametrize("env_name", sorted(pipeline_environments()))
def test_the_deploy_role_trusts_one_repository_and_one_github_environment(synthesized, env_name):
    settings = pipeline_environments()[env_name]
    template = synthesized[env_name].templates[synthesized[env_name].stack("DeployRoles")]
    (trust,) = statements(template, "DeployRole", "trust")
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Condition"] == {"StringEquals": {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": f"repo:{settings.github_repository}:environment:"
                                                   f"{settings.github_environment}"}}
    (diff_trust,) = statements(template, "DiffRole", "trust")
    assert diff_trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == \
        f"repo:{settings.github_repository}:pull_request"
    assert Template.from_json(template).find_resources("AWS::IAM::OIDCProvider", {"Properties": {
        "Url": "https://token.actions.githubusercontent.com", "ClientIdList": ["sts.amazonaws.com"]}})


@pytest.mark.parametrize("env_name", sorted(pipeline_environments()))
def test_the_roles_may_only_assume_the_bootstrap_roles_of_every_region_the_environment_deploys_to(synthesized,
                                                                                                 env_name):
    built = synthesized[env_name]
    template = built.templates[built.stack("DeployRoles")]
    regions = {s.region for s in built.built.stacks if s.stack_name != built.stack("DeployRoles")}
    qualifier = SecurityConfig().cdk_bootstrap_qualifier
    for role, kinds in (("DeployRole", DEPLOY_BOOTSTRAP_ROLES), ("DiffRole", ("lookup",))):
        (grant,) = statements(template, role, "policy")
        assert grant["Effect"] == "Allow" and grant["Action"] == ["sts:AssumeRole", "sts:TagSession"]
        arns = {flat(r) for r in grant["Resource"]}
        account = load_environment(cdk_context(), env_name).account or "${AWS::AccountId}"
        assert arns == {f"arn:${{AWS::Partition}}:iam::{account}:role/cdk-{qualifier}-{kind}-role-{account}-{region}"
                        for kind in kinds for region in regions}
        assert not any("cfn-exec" in arn or "*" in arn for arn in arns)  # CloudFormation's role stays its own
    # Nothing else: no inline policy, no other managed policy, no other role.
    resources = Template.from_json(template)
    assert resources.find_resources("AWS::IAM::Policy") == {}
    assert len(resources.find_resources("AWS::IAM::Role")) == 2
    assert set(template["Outputs"]) == {"DeployRoleArn", "DiffRoleArn"}


def test_prod_reaches_the_dr_region_and_the_global_region():
    regions = {"eu-west-1", "eu-central-1", "us-east-1"}
    config = load_environment(cdk_context(), "prod")
    assert {config.region, config.replication.region, "us-east-1"} == regions


def test_an_existing_oidc_provider_is_used_not_created_and_the_diff_role_can_be_left_out(tmp_path):
    arn = "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com"
    stack = DeployRolesStack(
        App(outdir=str(tmp_path)), "Roles", environment="staging",
        settings=PipelineConfig(github_repository=REPO, github_environment="staging", oidc_provider_arn=arn,
                                pull_request_diff=False),
        security=SecurityConfig(), targets=[DeployTarget("111122223333", "eu-west-1")],
        removal_policy=RemovalPolicy.DESTROY)
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::IAM::OIDCProvider", 0)
    template.resource_count_is("AWS::IAM::Role", 1)
    template.has_resource_properties("AWS::IAM::Role", {"AssumeRolePolicyDocument": {"Statement": [
        Match.object_like({"Principal": {"Federated": arn}, "Condition": {"StringEquals": Match.object_like({
            "token.actions.githubusercontent.com:sub": f"repo:{REPO}:environment:staging"})}})]}})


# --------------------------------------------------------------------------- the workflow


def test_actionlint_passes_on_every_workflow():
    result = subprocess.run([str(ACTIONLINT), "-no-color"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_is_live(tmp_path):
    broken = tmp_path / "x.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - uses: actions/checkout@v7\n        with:\n          persist-credential: false\n")
    result = subprocess.run([str(ACTIONLINT), "-no-color", str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "persist-credential" in result.stdout


def test_pull_requests_get_a_read_only_diff_never_from_a_fork():
    document = workflow()
    assert set(document["on"]) == {"pull_request", "push"}  # never pull_request_target
    assert document["permissions"] == {"contents": "read"}
    diff = document["jobs"]["diff"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in diff["if"]
    assert "github.event_name == 'pull_request'" in diff["if"]
    assert "environment" not in diff  # its token's subject is repo:OWNER/REPO:pull_request: the diff role's
    expected = {name for name, p in pipeline_environments().items() if p.pull_request_diff}
    assert {m["env"]: m["role"] for m in diff["strategy"]["matrix"]["include"]} == {
        name: f"AWS_DIFF_ROLE_ARN_{name.upper()}" for name in expected}
    assert diff["steps"][-1]["run"] == "make diff DEPLOY_ENV=${{ matrix.env }}"


def test_each_environment_deploys_in_its_github_environment_with_the_guarded_make_target():
    jobs = workflow()["jobs"]
    deploys = {job["environment"]: (name, job) for name, job in jobs.items() if "environment" in job}
    environments = pipeline_environments()
    assert set(deploys) == {p.github_environment for p in environments.values()}
    for env_name, settings in environments.items():
        name, job = deploys[settings.github_environment]
        runs = [step.get("run", "") for step in job["steps"]]
        assert f'make deploy DEPLOY_ENV={env_name} DEPLOY_FLAGS="--require-approval never"' in runs
        assert any(r.startswith(f".venv/bin/tavari-dr verify --env {env_name} --check ") for r in runs)
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        status = next(r for r in runs if "tavari-dr status" in r)
        assert f".venv/bin/tavari-dr status --env {env_name}" in status
    assert jobs["deploy-dev"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert jobs["deploy-prod"]["needs"] == "deploy-dev" and jobs["deploy-dev"]["needs"] == "test"


@pytest.mark.parametrize(("status_exit", "step_exit"), [(0, 0), (1, 1), (2, 0), (3, 3)])
def test_the_status_step_fails_the_deploy_on_red_and_warns_on_what_the_read_only_role_cannot_read(
        tmp_path, status_exit, step_exit):
    """The step's script as GitHub runs it (bash -eo pipefail), against a tavari-dr that exits as told."""
    (job,) = [j for j in workflow()["jobs"].values() if j.get("environment") == "dev"]
    script = next(s["run"] for s in job["steps"] if "tavari-dr status" in s.get("run", ""))
    fake = tmp_path / ".venv" / "bin" / "tavari-dr"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\nexit {status_exit}\n")
    fake.chmod(0o755)
    run = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == step_exit, run.stdout + run.stderr
    assert ("::warning::" in run.stdout) == (status_exit == 2)


def test_the_smoke_assumes_the_primary_regions_lookup_role(tmp_path):
    """The step's own script, run with a stand-in `aws` that answers the caller's account."""
    job = workflow()["jobs"]["deploy-prod"]
    (step,) = [s for s in job["steps"] if s.get("id") == "lookup"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text("#!/bin/sh\necho 111122223333\n")
    (bin_dir / "aws").chmod(0o755)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / "cdk.json").write_text((ROOT / "cdk.json").read_text())
    output = tmp_path / "github-output"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "GITHUB_OUTPUT": str(output)}
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, check=True, timeout=60)
    assert output.read_text() == \
        "role=arn:aws:iam::111122223333:role/cdk-hnb659fds-lookup-role-111122223333-eu-west-1\n"


# --------------------------------------------------------------------------- the placeholder account


def test_a_deploy_of_the_documentation_account_is_refused_and_says_where_to_set_it():
    context = {**cdk_context(), "env": "prod", DEPLOY_CONTEXT_KEY: "true"}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f'configuration error: environments.prod.account: "{PLACEHOLDER_ACCOUNT}" is the documentation\'s example '
        "account, not yours; set your 12-digit AWS account ID there in cdk.json before deploying")


@pytest.mark.parametrize(("mutate", "refused"), [
    (lambda p: None, "environments.prod.account"),
    (lambda p: p.update(account="111122223333") or p["replication"].update(account=PLACEHOLDER_ACCOUNT),
     "environments.prod.replication.account"),
    (lambda p: p.update(account="111122223333"), None),
])
def test_the_guard_reads_every_account_an_environment_names(mutate, refused):
    context = copy.deepcopy(cdk_context())
    mutate(context["environments"]["prod"])
    config = load_environment(context, "prod")
    if refused is None:
        refuse_placeholder_accounts(config)
    else:
        with pytest.raises(ConfigError, match=refused):
            refuse_placeholder_accounts(config)


def test_make_deploy_and_diff_pass_the_deploy_flag_and_name_the_environment():
    dry = subprocess.run(["make", "-n", "deploy", "diff", "DEPLOY_ENV=prod"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60).stdout
    assert f"deploy --all -c env=prod -c {DEPLOY_CONTEXT_KEY}=true" in dry
    assert f"diff --all --no-change-set -c env=prod -c {DEPLOY_CONTEXT_KEY}=true" in dry


def test_synth_without_the_flag_still_takes_the_documentation_account(synthesized):
    assert synthesized["prod"].built.storage.account == PLACEHOLDER_ACCOUNT


# --------------------------------------------------------------------------- configuration


def with_pipeline(**pipeline) -> dict:
    context = copy.deepcopy(cdk_context())
    context["environments"]["prod"]["pipeline"] = pipeline
    return context


@pytest.mark.parametrize(("pipeline", "expected"), [
    ({"github_repository": "tavari"},
     'environments.prod.pipeline.github_repository: "tavari" is not allowed; use a GitHub repository OWNER/REPO'),
    ({"github_repository": REPO, "github_environment": "prod env"},
     'environments.prod.pipeline.github_environment: "prod env" is not allowed; use a GitHub environment name'),
    ({"github_repository": REPO, "oidc_provider_arn": "arn:aws:iam::111122223333:oidc-provider/token.actions."
                                                      "githubusercontent.com"},
     "environments.prod.pipeline.oidc_provider_arn: \"arn:aws:iam::111122223333:oidc-provider/token.actions."
     "githubusercontent.com\" is not allowed; the provider must be in the environment's account (123456789012)"),
    ({"github_repository": REPO, "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/gitlab.com"},
     "environments.prod.pipeline.oidc_provider_arn: \"arn:aws:iam::123456789012:oidc-provider/gitlab.com\" is not "
     "allowed; use the ARN of a GitHub OIDC provider"),
    ({"oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"},
     "is not allowed without github_repository"),
    ({"github_repository": REPO, "pull_request_diff": "yes"},
     'environments.prod.pipeline.pull_request_diff: "yes" is not allowed; use true or false'),
    ({"github_repo": REPO}, "environments.prod.pipeline.github_repo: unknown key; allowed keys are"),
])
def test_bad_pipeline_values_name_key_value_and_allowed(pipeline, expected):
    with pytest.raises(ConfigError) as err:
        load_environment(with_pipeline(**pipeline), "prod")
    assert expected in str(err.value)


def test_the_github_environment_defaults_to_the_environments_name_and_no_repository_means_no_roles():
    assert load_environment(with_pipeline(github_repository=REPO), "prod").pipeline.github_environment == "prod"
    assert load_environment(with_pipeline(github_repository=REPO, github_environment="production"),
                            "prod").pipeline.subject("environment:production") == \
        f"repo:{REPO}:environment:production"
    assert not load_environment(with_pipeline(), "prod").pipeline.enabled


def test_a_staging_environment_copied_from_dev_synthesizes_with_its_own_roles(tmp_path):
    """docs/deploy/index.md: adding an environment is a cdk.json entry (then its GitHub environment and job)."""
    from tests.conftest import _synth

    context = copy.deepcopy(cdk_context())
    context["environments"]["staging"] = copy.deepcopy(context["environments"]["dev"])
    staging = _synth("staging", {**context, "env": "staging"}, tmp_path)
    assert staging.templates and all(name.startswith("Tavari-Staging-") for name in staging.templates)
    (trust,) = statements(staging.templates["Tavari-Staging-DeployRoles"], "DeployRole", "trust")
    assert trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == \
        f"repo:{REPO}:environment:staging"
