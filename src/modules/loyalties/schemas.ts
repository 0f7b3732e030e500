import {
  AnyObject,
  Answer,
  IdParam,
  PagedQuery,
  Nullable,
  PathParams,
  Reminders,
  type Static,
  StringEnum,
  Type,
} from '../../http/schema.ts';

/** Voucherify's `expiration_rules` (also used by earning rules). */
export const ExpirationRules = Nullable(
  Type.Object({
    period_type: StringEnum(['MONTH', 'FIXED_DAY_OF_YEAR']),
    period_value: Type.Optional(Type.Integer({ minimum: 1, maximum: 1200 })),
    rounding_type: Type.Optional(
      StringEnum(['END_OF_MONTH', 'END_OF_QUARTER', 'END_OF_HALF_YEAR', 'END_OF_YEAR', 'PARTICULAR_MONTH']),
    ),
    rounding_value: Type.Optional(Type.Integer({ minimum: 1, maximum: 12 })),
    fixed_month: Type.Optional(Type.Integer({ minimum: 1, maximum: 12 })),
    fixed_day: Type.Optional(Type.Integer({ minimum: 1, maximum: 31 })),
  }),
);

const dateTime = () => Nullable(Type.String({ format: 'date-time' }));
const programProps = {
  description: Type.Optional(Nullable(Type.String())),
  type: Type.Optional(StringEnum(['AUTO_UPDATE', 'STATIC'])),
  campaign_type: Type.Optional(StringEnum(['LOYALTY_PROGRAM'])),
  auto_join: Type.Optional(Type.Boolean()),
  join_once: Type.Optional(Type.Boolean()),
  active: Type.Optional(Type.Boolean()),
  start_date: Type.Optional(dateTime()),
  expiration_date: Type.Optional(dateTime()),
  timezone: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 64,
      description: 'IANA time zone of the program (earning windows, expiry rounding)',
    }),
  ),
  metadata: Type.Optional(Nullable(AnyObject())),
  reminders: Type.Optional(Nullable(Reminders)),
  vouchers_count: Type.Optional(Type.Integer({ minimum: 0 })),
  voucher: Type.Optional(
    Type.Object({
      type: Type.Optional(StringEnum(['LOYALTY_CARD'])),
      loyalty_card: Type.Optional(
        Type.Object({
          points: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
          expiration_rules: Type.Optional(ExpirationRules),
        }),
      ),
      redemption: Type.Optional(Type.Object({ quantity: Type.Optional(Nullable(Type.Integer({ minimum: 0 }))) })),
      code_config: Type.Optional(
        Type.Object({
          length: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
          charset: Type.Optional(Type.String({ minLength: 2, maxLength: 256 })),
          prefix: Type.Optional(Type.String({ maxLength: 50 })),
          postfix: Type.Optional(Type.String({ maxLength: 50 })),
          pattern: Type.Optional(Type.String({ maxLength: 120 })),
        }),
      ),
    }),
  ),
};
const programName = Type.String({ minLength: 1, maxLength: 200 });
export const ProgramBody = Type.Object({ name: programName, ...programProps });
export const ProgramUpdateBody = Type.Object({ name: Type.Optional(programName), ...programProps });
/**
 * A program as written. Voucherify's other campaign fields (category, loyalty_tiers_expiration,
 * validity_*: EXTRA_FIELDS in service.ts) pass validation unchecked and are stored as given.
 */
export type ProgramInput = Static<typeof ProgramUpdateBody> & { [other: string]: unknown };

const definitionProps = {
  unit: Type.Optional(Type.String({ minLength: 1, maxLength: 50 })),
  min: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }))),
  max: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }))),
  expiration_rules: Type.Optional(ExpirationRules),
  metadata: Type.Optional(Nullable(AnyObject())),
  reminders: Type.Optional(Nullable(Reminders)),
};
const definitionName = Type.String({ minLength: 1, maxLength: 100 });
export const DefinitionBody = Type.Object({ name: definitionName, ...definitionProps });
export const DefinitionUpdateBody = Type.Object({ name: Type.Optional(definitionName), ...definitionProps });
export type BalanceDefinitionInput = Static<typeof DefinitionUpdateBody>;

export const Campaign = Answer('campaign');
export const Definition = Answer('balance_definition');
export const ProgramListQuery = PagedQuery({
  order: Type.Optional(StringEnum(['created_at', '-created_at'])),
});
export const CampaignParams = IdParam('campaignId', 'Loyalty campaign id (camp_...)');
export const DefinitionParams = PathParams({
  campaignId: 'Loyalty campaign id',
  definitionId: 'Balance definition id or name',
});
