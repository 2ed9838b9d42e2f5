"""What every capability shares, and what every Lambda asset carries: the configuration loader,
the stacks' outputs contract, metrics, AWS clients and the secret cache, env files, report writing,
the multipart S3 sink, the schedule calendar, the cost model and the drill evidence."""
