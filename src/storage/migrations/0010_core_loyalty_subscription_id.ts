import type { Kysely } from 'kysely';
import type { TallyMigration } from '../migrate.ts';

// A membership's external subscription id (Brevo's `loyaltySubscriptionId`): given when a member is
// imported from another system, or null (then the card's `v_` id stands for it in the events).
// Unique per program, so it can name the subscription.
export const loyaltySubscriptionIdMigration: TallyMigration = {
  name: '0010_core_loyalty_subscription_id',
  async up(db: Kysely<any>) {
    await db.schema.alterTable('memberships').addColumn('loyalty_subscription_id', 'text').execute();
    await db.schema
      .createIndex('memberships_subscription_id')
      .on('memberships')
      .columns(['program_id', 'loyalty_subscription_id'])
      .unique()
      .execute();
  },
};
