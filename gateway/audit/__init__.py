"""The audit trail: who did what, to what, with what outcome, when, under which request."""
