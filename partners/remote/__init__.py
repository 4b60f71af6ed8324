"""Partner pools hosted elsewhere: the points API a remote partner offers, and the adapter.

``openapi.yaml`` and ``contract.md`` describe the API; ``adapter.RemotePool`` is the gateway's
client for it; ``reference.ReferencePartner`` is a faithful in-memory implementation with
fault injection (its books in ``reference_ledger``, its faults in ``reference_faults``), for
tests and development.
"""
