"""Point-of-sale holds: authorize, capture, void, expire."""
