/**
 * 003: API tokens with roles, and sessions that remember the token they were made from.
 * Sessions made before this migration cannot say which token made them, so they end here.
 */
export const sql = `
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  token_sha256 TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  expires_at INTEGER
);

DELETE FROM sessions;
ALTER TABLE sessions ADD COLUMN token_sha256 TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_by_token ON sessions(token_sha256);
`;
