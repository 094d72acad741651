"""Background work: claiming jobs, leases, and training in child processes."""
