"""Who may use the API: users from the config, bcrypt passwords, JWT sessions, roles.

One module per concern:
- `agent.auth.jwt_secret`: the JWT signing secret (config, or a private file made on first start);
- `agent.auth.tokens`: issuing a token at login, checking one on every request, logging out;
- `agent.auth.user_sync`: the config's users into the store, and the generated first admin;
- `agent.auth.bcrypt_pool`: password checks off the event loop, at equal cost for unknown names.
Login limits and the log's view of names are `agent.login_limits` and `agent.login_names`;
hashing is `agent.passwords`; the SQL is the store's (`agent.store.users`, `agent.store.tokens`).

Design notes:
- Users come from the config's `users:` and are written to the store at start and on every
  reload (`sync_users`). With no users declared, hb2r makes `admin` with a random password
  written to `<state_dir>/initial-admin-password` (0600); the first declared user replaces it.
- A token is a JWT (HS256 only) naming the user, a random id (`jti`), its expiry and `pwd`, a
  short digest of the user's password hash at login. Every request looks the user up in
  the store: a user removed from the config, or whose hash changed, is refused at once, and the
  role is always the stored one. Logout records the `jti` until the token would have expired.
- bcrypt is slow on purpose; it runs in an executor of its own with LOGIN_THREADS threads at
  nice 10, so a storm of logins leaves the event loop a core and its pick of the CPU, and at
  most MAX_PENDING_LOGINS wait (the rest are told to come back later). An unknown user is
  checked against a dummy hash of the same cost: the answer and the time are those of a wrong
  password.
- Login attempts are limited per client address and per (address, user name), and failures
  for one name are slowed down across addresses: see agent.login_limits.
- The wall clock may step back (NTP, a restored VM): a token issued up to CLOCK_LEEWAY "in
  the future" is accepted, so a small step does not log everyone out; one from further ahead
  is refused (log in again). A step back lengthens the tokens' life by as much.
"""
