"""Domain events: what happened, appended to an outbox in the posting's own transaction and
read in order by consumers that each remember where they are."""
