"""Point expiry: what expires when, the job that posts it, the breakage report."""
