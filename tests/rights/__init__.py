"""Tests of the data-subject rights: requests, the workflow and its worker, each right, due dates."""
