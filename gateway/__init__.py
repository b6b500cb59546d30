"""Cognate: a self-hostable identity federation gateway (OpenID Provider, user pools,
identity pools and AWS credentials) on Redis.

The package is organised by area; `gateway.app.create_app` is the only place that knows them all.
"""

__version__ = "0.1.0"
