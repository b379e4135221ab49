"""Hostile input (issue 11): schemathesis against the OpenAPI schema, hypothesis against the portal's and admin's
forms, and hand-made hostile requests at the HTTP level."""
