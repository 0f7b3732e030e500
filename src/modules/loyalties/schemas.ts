import { Nullable, StringEnum, Type } from '../../http/schema.ts';

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
