"""Partner pools hosted elsewhere: the points API a remote partner offers, and the adapter.

``openapi.yaml`` and ``contract.md`` describe the API; ``adapter.RemotePool`` is the gateway's
client for it; ``reference.ReferencePartner`` is a faithful in-memory implementation with
fault injection, for tests and development.
"""
