#!/usr/bin/env python3
"""CDK entry point: `cdk synth --all -c env=prod` (default env: dev)."""

import sys

from aws_cdk import App

from stacks.app import build_app
from tavari_dr.core.config import (
    DEPLOY_CONTEXT_KEY,
    ConfigError,
    load_all,
    load_environment,
    refuse_placeholder_accounts,
    refuse_placeholder_contacts,
)

app = App()
try:
    context = {key: app.node.try_get_context(key) for key in ("env", "environments")}
    load_all(context)  # a typo in any environment fails every synth, not only its own
    config = load_environment(context)
    # The CDK CLI runs this app the same way for synth, diff and deploy; `make deploy`, `make diff` and the
    # workflow say when the synth is for a real account (the documentation's example account is not one).
    if str(app.node.try_get_context(DEPLOY_CONTEXT_KEY)).lower() == "true":
        refuse_placeholder_accounts(config)
        refuse_placeholder_contacts(config)
except ConfigError as err:
    sys.exit(f"configuration error: {err}")
build_app(app, config)
app.synth()
