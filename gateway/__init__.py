"""The coalition loyalty gateway."""
