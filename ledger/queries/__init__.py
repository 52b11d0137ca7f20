"""SQL statements of the ledger, one module per aggregate; each constant is one statement."""
