"""`corit prepare`: folders prepared once on disk (plan, worker records, Arrow shards, resume) and reopened."""
