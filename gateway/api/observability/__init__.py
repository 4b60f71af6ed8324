"""What the gateway tells its operators: Prometheus metrics, a structured log line per
request, liveness and readiness probes."""
