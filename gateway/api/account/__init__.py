"""The member's account page at /account: wallets, linked brands, conversions, history and
rewards, over the gateway's own GraphQL API with the member's session cookie."""
