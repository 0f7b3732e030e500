import type { Kysely } from 'kysely';
import type { TallyMigration } from '../migrate.ts';

// `point_lots_expiry (expires_at, remaining)` served no query: lots expire through one scheduled
// job each (`ledger.expire_lot`), and a card's next expiry is read through `point_lots_open`. Yet
// every credit inserted into it and every debit rewrote its entries (`remaining` is in the key).
export const dropLotExpiryIndexMigration: TallyMigration = {
  name: '0002_core_drop_lot_expiry_index',
  async up(db: Kysely<any>) {
    await db.schema.dropIndex('point_lots_expiry').ifExists().execute();
  },
};
