"""Development stand-ins: the bundled OpenID provider and the reference remote
partner, wired in only by the gateway's composition root."""
