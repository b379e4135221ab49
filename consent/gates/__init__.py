"""The gates the policy guards: the check, purpose-bound profile reads, marketing sends and the one-click
unsubscribe link."""
