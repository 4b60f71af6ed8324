"""Members' data rights: export of everything held about a member, and erasure."""
