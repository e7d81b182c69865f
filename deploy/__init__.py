"""Delivery tooling: the revision template, the smoke suite and the gated rollout that Cloud Build runs."""
