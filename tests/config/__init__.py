"""Tests of the project-wide edge (config/): settings, the client's address, the input guard, and the API's answers
for a database that is down, the rate limit, unknown routes, methods and sizes, the schema and its docs."""
