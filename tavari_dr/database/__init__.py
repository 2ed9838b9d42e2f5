"""Off-site database backups: pg_dump to the Object-Lock bucket, verify and restore (backup), and their SQL."""
