"""Entry points and the composition root: the ASGI app, GraphQL, HTTP routes, the CLI."""
