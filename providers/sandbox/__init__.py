"""The sandbox chain: Horizon-, Trustless Work- and Airtm-compatible HTTP apps over one simulated
state.

Used by ``offerhub serve`` when no provider credentials are configured, and by the tests.
"""
