"""Tavari-<Env>-DeployRoles: the roles GitHub Actions deploys with (OIDC, no stored keys).

Each role may do one thing: assume roles that ``cdk bootstrap`` made. The deploy role (trusted by the
repository's jobs in one GitHub environment) assumes the deploy, publishing and lookup roles of every
account and region the environment's stacks live in; CloudFormation's execution role does the
deploying. The diff role (trusted by the repository's pull-request jobs) assumes the lookup roles only:
ReadOnlyAccess with kms:Decrypt denied. Its first deploy is by hand: before it, nothing trusts GitHub.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from tavari_dr.core.config import PipelineConfig, SecurityConfig
from tavari_dr.core.outputs import DEPLOY_ROLE_ARN, DIFF_ROLE_ARN

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
# The audience aws-actions/configure-aws-credentials asks GitHub's token for.
STS_AUDIENCE = "sts.amazonaws.com"
# What `cdk deploy` assumes: deploy (CloudFormation calls), the publishing roles (assets), lookup
# (context lookups, the diff). Never cfn-exec: only CloudFormation may assume that one.
DEPLOY_BOOTSTRAP_ROLES = ("deploy", "file-publishing", "image-publishing", "lookup")
DIFF_BOOTSTRAP_ROLES = ("lookup",)
# A deploy of every stack can outlast the default hour; the CLI re-assumes the bootstrap roles from it.
DEPLOY_SESSION = Duration.hours(2)



@dataclass(frozen=True)
class DeployTarget:
    """An account (None: the stack's own, for an environment-agnostic app) and region a stack deploys to."""

    account: str | None
    region: str


class DeployRolesStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, environment: str, settings: PipelineConfig,
                 security: SecurityConfig, targets: Sequence[DeployTarget], removal_policy: RemovalPolicy,
                 **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if settings.oidc_provider_arn:
            provider_arn = settings.oidc_provider_arn
        else:
            self.provider = iam.OidcProviderNative(self, "GitHubOidc", url=GITHUB_OIDC_URL, client_ids=[STS_AUDIENCE],
                                                   removal_policy=removal_policy)
            provider_arn = self.provider.oidc_provider_arn
        self.targets = tuple(dict.fromkeys(targets))  # ordered, without repeats
        self.deploy_role = self._role(
            "DeployRole", provider_arn, settings.subject(f"environment:{settings.github_environment}"),
            security, DEPLOY_BOOTSTRAP_ROLES,
            f"GitHub Actions deploys ({settings.github_repository}, environment {settings.github_environment})")
        CfnOutput(self, DEPLOY_ROLE_ARN, value=self.deploy_role.role_arn,
                  description=f"GitHub environment {settings.github_environment}: variable AWS_DEPLOY_ROLE_ARN")
        self.diff_role = None
        if settings.pull_request_diff:
            self.diff_role = self._role("DiffRole", provider_arn, settings.subject("pull_request"), security,
                                        DIFF_BOOTSTRAP_ROLES,
                                        f"GitHub Actions cdk diff on pull requests ({settings.github_repository})")
            CfnOutput(self, DIFF_ROLE_ARN, value=self.diff_role.role_arn,
                      description=f"Repository variable AWS_DIFF_ROLE_ARN_{environment.upper()} (cdk diff on "
                                  "pull requests)")

    def _role(self, construct_id: str, provider_arn: str, subject: str, security: SecurityConfig,
              kinds: Sequence[str], description: str) -> iam.Role:
        role = iam.Role(
            self, construct_id, description=description, max_session_duration=DEPLOY_SESSION,
            assumed_by=iam.WebIdentityPrincipal(provider_arn, conditions={"StringEquals": {
                f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE, f"{GITHUB_OIDC_HOST}:sub": subject}}))
        arns = [self.bootstrap_role_arn(security, kind, target) for target in self.targets for kind in kinds]
        # sts:TagSession: the bootstrap roles' trust policies allow it for their account, and the CLI may tag.
        policy = iam.ManagedPolicy(self, f"{construct_id}Policy", description=f"{description}: the CDK bootstrap "
                                   "roles, nothing else", statements=[iam.PolicyStatement(
                                       actions=["sts:AssumeRole", "sts:TagSession"], resources=arns)])
        role.add_managed_policy(policy)
        return role

    def bootstrap_role_arn(self, security: SecurityConfig, kind: str, target: DeployTarget) -> str:
        account = target.account or Aws.ACCOUNT_ID
        return f"arn:{Aws.PARTITION}:iam::{account}:role/{security.bootstrap_role_name(kind, account, target.region)}"
