"""Shared kernel: exact money, prefixed identifiers and the application error root.

Every other package may import this one; it imports nothing of ours.
"""
