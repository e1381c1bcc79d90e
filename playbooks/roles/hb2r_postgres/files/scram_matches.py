"""Exit 0 if a password matches a PostgreSQL SCRAM-SHA-256 verifier (pg_authid.rolpassword), else 1.

Reads two lines on stdin, the verifier and the password, so neither shows on a command line. Lets the
role leave a role's password alone when it is already the one asked for: a second deploy changes nothing.
(PostgreSQL normalises non-ASCII passwords with SASLprep first; such a password is only set again.)
"""

import base64
import hashlib
import hmac
import re
import sys

verifier, _, password = sys.stdin.read().partition("\n")
password = password.removesuffix("\n")
match = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier.strip())
if match is None:
    sys.exit(1)
salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(match[2]), int(match[1]))
client_key = hmac.new(salted, b"Client Key", "sha256").digest()
sys.exit(0 if hmac.compare_digest(hashlib.sha256(client_key).digest(), base64.b64decode(match[3])) else 1)
