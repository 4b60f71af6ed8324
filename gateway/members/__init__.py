"""Members' identities: sign-in, linking and merging accounts."""
