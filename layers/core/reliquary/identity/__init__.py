"""Tenants, API clients, roles and scopes, and the access tokens of the API (docs/identity.md)."""
