"""The operator console at /console: server-rendered pages over the gateway's own GraphQL
API, for operators signed in through the coalition's provider."""
