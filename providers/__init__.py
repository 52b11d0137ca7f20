"""External providers: ports, real HTTP clients and the sandbox chain (Horizon, Trustless Work,
Airtm).

Imports only its own package and the shared money and error types of ``common``.
"""
