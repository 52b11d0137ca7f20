"""SQL of the HTTP edge (marketplaces, API keys, idempotency records) as typed async functions.

Internal to ``api``: route handlers call these through the API's own modules.
"""
