"""Webhooks: the outbox written with every change, subscriptions, and their signed delivery (Standard Webhooks)."""
