"""SQL statements of the flows (durable operations, wallets) as typed async functions.

Internal to ``flows``: other packages go through the flows' own functions.
"""
