"""Imports of earn files: the file format, the imports' records and checkpoints, and the
service that posts a file batch by batch through the earning service's bulk posting."""
