"""The subjects API (API.md): linked-record ingestion (single and batch), merge proposals and rights requests."""
