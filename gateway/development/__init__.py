"""Development stand-ins (the demo members), wired in only by the composition root."""
