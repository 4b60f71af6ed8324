"""Settlement between partners: periods, statements, reconciliation."""
