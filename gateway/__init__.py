"""Attune HTTP gateway: REST API, webhooks and WebSocket notifications (Flask on eventlet.wsgi)."""
