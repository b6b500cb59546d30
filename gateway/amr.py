"""Authentication method references (RFC 8176): how a sign-in was proven.

Sessions, tokens and policies carry `amr`; these are the values Cognate writes and the test
for "a second factor was used" that every policy (`mfa: true`), step-up and ID token relies on.
"""

from __future__ import annotations

PASSWORD = ["pwd"]
# A code from the authenticator app, by e-mail, or a recovery code, after the first factor.
CODE = ["otp", "mfa"]
# A passkey as the second factor.
PASSKEY = ["hwk", "mfa"]
# A passkey alone: something the user has and a user-verification gesture, in one step.
PASSWORDLESS = ["hwk", "user", "mfa"]
# A code by e-mail as the first factor (passwordless; USER_AUTH's EMAIL_OTP). No RFC 8176
# value names it ("otp" would read as a second factor): one factor, the mailbox.
SIGN_IN_CODE = ["email"]
# `amr` values that say a second factor was used.
MFA_METHODS = frozenset({"mfa", "otp", "hwk", "swk", "sms", "fido"})


def passed_second_factor(amr: list[str]) -> bool:
    """Did this sign-in use a second factor?"""
    return bool(MFA_METHODS.intersection(amr))
