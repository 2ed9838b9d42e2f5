"""Alert routing: SNS messages to the webhook and Sentry (router)."""
