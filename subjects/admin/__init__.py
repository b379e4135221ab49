"""The subjects app's admin pages (subjects, merges, the rights-request queue) on the shared site of consent.admin,
rendering this app's own templates; importing the package registers them."""

from subjects.admin import merges, rights_requests, subjects  # noqa: F401  (they register)
