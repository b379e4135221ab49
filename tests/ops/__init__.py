"""Operating Assent: health and readiness probes, metrics, structured logs."""
