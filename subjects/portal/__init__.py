"""The customer self-service portal (an edge): sign-in by e-mail link, preference centre, consent history and
rights requests. It parses input and calls services and selectors of `consent` and `subjects`; it never writes a
domain model itself."""
