"""The user's `attune` commands: a click CLI over Attune's REST API and WebSocket feed.

A client of the API only: it imports nothing of the platform (nameko_services, gateway,
runners), so it runs wherever a user has Python and the network path to the gateway. The
import-linter contracts in pyproject.toml keep it so.
"""
