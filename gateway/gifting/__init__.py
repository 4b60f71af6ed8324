"""Gifting points from one member to another in the same pool."""
