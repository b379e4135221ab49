"""The catalogue (privacy as code): the policy's snapshot of it, validating and applying a catalogue file, and
the admin's edits."""
