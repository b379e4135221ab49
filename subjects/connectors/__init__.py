"""Connected systems that rights reach into: the PostgreSQL connector (map, live-schema check, access, erasure)."""
