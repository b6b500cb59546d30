"""Pagination tokens of the admin operations (ListUsers' PaginationToken, the NextTokens):
where the next page starts, sealed (AES-GCM, `gateway.crypto.Sealer`) so a token is opaque
and cannot be forged or moved to another listing — each is bound to its operation and to the
query it continues (a token of `email ^= "a"` does not continue `email ^= "b"`).

A position is the last index member a page showed (never an offset), so users added or removed
meanwhile neither repeat nor skip anyone else.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from gateway.errors import CognitoError

if TYPE_CHECKING:
    from gateway.crypto import Sealer

PURPOSE = "cognito-idp-page"


def _context(operation: str, query: str) -> bytes:
    return f"{operation}\x00{query}".encode()


def issue(sealer: Sealer, operation: str, query: str, position: str) -> str:
    """A token that continues `operation`'s `query` after `position`."""
    blob = sealer.seal(position.encode(), purpose=PURPOSE, context=_context(operation, query))
    return base64.urlsafe_b64encode(blob).decode().rstrip("=")


def resume(sealer: Sealer, operation: str, query: str, token: str) -> str:
    """The position a token names; InvalidParameterException when it is not one of ours for
    this query (Cognito's answer to a token it did not issue)."""
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return sealer.open(blob, purpose=PURPOSE, context=_context(operation, query)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise CognitoError(
            "InvalidParameterException", "Invalid pagination token provided."
        ) from None
