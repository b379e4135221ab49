"""manage.py commands: key rotation, re-encryption and replaying erasures after a backup restore."""
