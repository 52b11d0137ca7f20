"""Use cases that cross packages: orders, escrow, deposits, top-ups, withdrawals, operations,
events.

May import ledger, statemachines and providers; never the API.
"""
