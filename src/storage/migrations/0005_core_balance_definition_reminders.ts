import type { TallyMigration } from '../migrate.ts';

// Reminders of expiring points on a balance definition (`reminders: [{unit, value}]`, JSON; null:
// none): the time engine sends `balance_expiration_reminder` that long before points expire.
export const balanceDefinitionRemindersMigration: TallyMigration = {
  name: '0005_core_balance_definition_reminders',
  async up(db) {
    await db.schema.alterTable('balance_definitions').addColumn('reminders', 'text').execute();
  },
};
