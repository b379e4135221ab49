"""Send jobs: large sends uploaded as NDJSON, gated set-based by a worker in chunks, resumable, logged as one send."""
