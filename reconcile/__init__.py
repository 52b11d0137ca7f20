"""Reconciliation of the ledger against the chain and providers, and the Prometheus metrics.

Sits on top with the API; imports flows, ledger and providers.
"""
