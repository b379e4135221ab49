"""The admin site of both apps (site, base classes, staff, audit, dashboard, records of processing) and the consent
models' pages; importing the package registers those pages (catalogue, purposes, clients, ledger, sends, accounts)."""

from consent.admin import accounts, catalogue, clients, ledger, purposes, sends, webhooks  # noqa: F401  (they register)
