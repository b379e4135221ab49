"""The people behind the data: subjects, their identifiers, linked records, merges, profile and keys (encrypted under
each person's data key), the suppression list, and the data-subject rights (rights/). Never imports `consent`."""
