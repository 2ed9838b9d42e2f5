"""`tavari-dr status`: the operator's one screen, from stored evidence only (ADR 0025).

Nothing here checks anything live (that is `tavari-dr verify`): every row is read from what the jobs,
the drills, CloudFormation and CloudWatch already recorded — the backups' listings, the verification
and drill reports, the audit records, alarm states, metric datapoints, S3 Batch Operations jobs and the
secrets' values. ``sources`` reads them (a bounded number of calls each, no retries), ``board`` judges
and draws them.
"""
