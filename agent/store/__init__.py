"""SQLite state: the ledger of transcodes, the job queue, users, and the scan memory."""
