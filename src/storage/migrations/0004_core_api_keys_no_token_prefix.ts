import type { Kysely } from 'kysely';
import type { TallyMigration } from '../migrate.ts';

// API keys kept the first 11 characters of their token for display: for a short token set through
// TALLY_APP_TOKEN that was much of the secret. Keys are found by app id or by the token's SHA-256;
// nothing of the token is kept besides that digest.
export const apiKeysNoTokenPrefixMigration: TallyMigration = {
  name: '0004_core_api_keys_no_token_prefix',
  async up(db: Kysely<any>) {
    await db.schema.alterTable('api_keys').dropColumn('token_prefix').execute();
  },
};
