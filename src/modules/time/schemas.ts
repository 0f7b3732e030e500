import { PagedQuery, Type } from '../../http/schema.ts';

export const ScheduleQuery = PagedQuery({
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Earliest moment listed (default: now)' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Latest moment listed (default: from + 7 days)' })),
  type: Type.Optional(
    Type.String({
      description:
        'A kind (subscription_anniversary, membership_reminder, tier_anniversary, tier_reminder, ' +
        'balance_reminder, voucher_reminder) or one of the event types it emits (e.g. subscription_year_anniversary)',
    }),
  ),
});

export const SkippedQuery = PagedQuery({});
