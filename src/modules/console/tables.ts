// Tables of the console module (migration 0900_console_sessions).

/** A signed-in browser. The cookie holds the session token; only its SHA-256 is stored. */
export interface ConsoleSessionsTable {
  id: string;
  token_hash: string;
  /** Sent back in every state-changing request (form field or header); compared with this. */
  csrf_token: string;
  api_key_id: string;
  app_id: string;
  /** The API token the session signed in with, sealed with the secret box (context: the session id). */
  sealed_token: string;
  created_at: string;
  expires_at: string;
}

declare module '../../storage/schema.ts' {
  interface DB {
    console_sessions: ConsoleSessionsTable;
  }
}
