"""Integrations with frameworks; each imports its framework, so import only the one you use."""
