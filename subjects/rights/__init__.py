"""Data-subject rights (GDPR Art. 12-21): requests, their Celery workflow and the work of each kind.

Core: never imports `consent`; consent data is reached through `subjects.ports.consent_rights`.
`tasks.py` is the edge that Celery runs."""
