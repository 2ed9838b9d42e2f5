"""The invoice bucket: point-in-time restore (restore) and its S3 Batch Operations path (batch)."""
