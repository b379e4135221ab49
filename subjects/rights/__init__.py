"""Data-subject rights (GDPR Art. 12-21): requests (requests, details, selectors), their workflow engine (workflow,
context) and registry of handlers, one module per right (access/, erasure, rectification, restriction, objection),
due dates (calendar) and reminders. `tasks.py` is the Celery edge; core never imports `consent` (subjects.ports)."""
