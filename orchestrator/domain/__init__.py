"""The vocabulary every layer shares: permissions, the desired and live models, key naming.

A leaf package: it imports nothing else from orchestrator, and everything may import it.
"""
