"""Background work: event consumers and periodic sweeps, run by ``coalition jobs`` or inside
``coalition serve``; any number of runners at once share the work through the database."""
