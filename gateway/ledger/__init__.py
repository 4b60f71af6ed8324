"""The posting kernel: double-entry rules, the posting store and service, reversals,
conversion quotes, and the records they hand out."""
