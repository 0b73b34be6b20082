"""Shared domain code: models, repositories, rules, templating, crypto and auth.

Imported by the gateway and by every service; imports no nameko, flask, kombu or eventlet.
"""
