"""Attune platform services and the shared domain package."""
