"""The rewards catalogue and redeeming a reward with points of any pool."""
