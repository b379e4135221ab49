"""Consent: the ledger of consent events and its state, the catalogue, the policy check and its gates, the consent
API, and the adapters that act on consent data for subjects."""
