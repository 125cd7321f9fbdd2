"""Contracts: the two worker clients agree, and the import boundaries hold."""
