"""Configuration backups in Secrets Manager: push an env file, pull it back, check it (secrets)."""
