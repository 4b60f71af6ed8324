"""Postings at partners that keep their own points: the saga and its resumption."""
