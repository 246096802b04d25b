"""Password hashing with passlib: bcrypt for new passwords; apr1 and SHA1 verified too, for
accounts imported from Apache htpasswd files."""

from __future__ import annotations

from functools import cache

from passlib.context import CryptContext

BCRYPT_MAX_BYTES = 72

_context = CryptContext(schemes=["bcrypt", "apr_md5_crypt", "ldap_sha1"], default="bcrypt")


class PasswordRejected(ValueError):
    """A password Tollgate will not store (the message says why)."""


def check_password_rules(password: str) -> None:
    if not password:
        raise PasswordRejected("the password is empty")
    if len(password.encode()) > BCRYPT_MAX_BYTES:
        # bcrypt ignores everything past 72 bytes; refusing beats silently truncating.
        raise PasswordRejected(f"the password is longer than {BCRYPT_MAX_BYTES} bytes, "
                               "which bcrypt cannot use in full")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _context.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _context.verify(password, password_hash)
    except (ValueError, TypeError):
        return False


def is_supported_hash(password_hash: str) -> bool:
    return _context.identify(password_hash) is not None


@cache
def dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that a sign-in takes as
    long for an unknown user as for a wrong password (made on first use: bcrypt is slow)."""
    return _context.hash("tollgate-no-such-user")
