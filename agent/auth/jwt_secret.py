"""The JWT signing secret: `auth.jwt_secret` from the config, or a private file made on first start.

Whoever reads the secret can sign a token for any user, so the file is made 0600 with 32
random bytes, opened without following links, and refused if others may read or change it.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from agent.config.models import Auth

SECRET_BYTES = 32


class SecretError(Exception):
    """The JWT secret cannot be read or made; the message says why."""


def load_secret(auth: Auth) -> bytes:
    """Return the JWT signing secret: `auth.jwt_secret`, else the file's content (made if missing).

    Raise SecretError if the file cannot be read or made, is a link, may be read or changed by
    anyone but its owner, or holds fewer than 32 bytes.
    """
    if auth.jwt_secret:
        return auth.jwt_secret.encode("utf-8")
    path = auth.jwt_secret_file
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        pass
    except OSError as error:
        raise SecretError(f"cannot create jwt_secret_file {path}: {error.strerror}") from None
    else:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(SECRET_BYTES))
            file.flush()
            os.fsync(file.fileno())
    secret = _read_private(path)
    if secret.isascii():
        secret = secret.strip()  # a secret an operator wrote with echo ends in a newline
    if len(secret) < SECRET_BYTES:
        raise SecretError(
            f"jwt_secret_file {path} holds {len(secret)} bytes; at least {SECRET_BYTES} are needed "
            "(delete it and hb2r makes a new one)"
        )
    return secret


def _read_private(path: Path) -> bytes:
    """Return the content of the secret file at path; raise SecretError if it is a link, not a
    file, or open to group or others (a secret others can read lets them sign any user's token)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SecretError(
                f"jwt_secret_file {path} is a symbolic link; hb2r does not follow links to its secrets: "
                "put the file itself there (0600)"
            ) from None
        raise SecretError(f"cannot read jwt_secret_file {path}: {error.strerror}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise SecretError(f"cannot read jwt_secret_file {path}: it is not a file")
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077:
            raise SecretError(
                f"jwt_secret_file {path} may be read or changed by users other than its owner (mode {mode:04o}); "
                f"anyone who reads it can sign tokens for any user: make it private: chmod 600 {path}"
            )
        chunks = []
        while chunk := os.read(descriptor, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as error:
        raise SecretError(f"cannot read jwt_secret_file {path}: {error.strerror}") from None
    finally:
        os.close(descriptor)
