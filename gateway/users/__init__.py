"""The user directory (user pools): accounts, passwords and, later, sign-up, verification and MFA.

`UserDirectory` owns the `user:` and `user-email:` keys; `PasswordHasher` owns argon2id.
"""
