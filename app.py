#!/usr/bin/env python3
"""CDK entry point: `cdk synth --all -c env=prod` (default env: dev)."""

import sys

from aws_cdk import App

from stacks.app import build_app
from tavari_dr.core.config import ConfigError, load_all, load_environment

app = App()
try:
    context = {key: app.node.try_get_context(key) for key in ("env", "environments")}
    load_all(context)  # a typo in any environment fails every synth, not only its own
    config = load_environment(context)
except ConfigError as err:
    sys.exit(f"configuration error: {err}")
build_app(app, config)
app.synth()
