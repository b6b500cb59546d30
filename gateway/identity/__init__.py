"""Identity pools: every login, local or federated, becomes a stable identity ID.

`ids.IdentityResolver` maps `(connector_id, subject)` to `<region>:<uuid>`. The Cognito Identity
API, linking and guest identities build on it.
"""
