import { IdParam, PagedQuery, PathParams, type Static, StringEnum, Type } from '../../http/schema.ts';

export const BalanceBody = Type.Object({
  points: Type.Integer({
    minimum: -Number.MAX_SAFE_INTEGER,
    maximum: Number.MAX_SAFE_INTEGER,
    not: { const: 0 },
    description: 'Points to add; a negative number removes points',
  }),
  reason: Type.Optional(Type.String({ maxLength: 1000 })),
  source_id: Type.Optional(Type.String({ maxLength: 200 })),
  expiration_type: Type.Optional(StringEnum(['PROGRAM_RULES', 'PROGRAM_DEFAULT', 'CUSTOM_DATE', 'NON_EXPIRING'])),
  expiration_date: Type.Optional(Type.String({ format: 'date-time' })),
  balance_definition_id: Type.Optional(
    Type.String({ description: 'Balance definition id or name; the default points balance when absent' }),
  ),
});
export type BalanceBody = Static<typeof BalanceBody>;

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ maxLength: 255 })),
});

/** The answer of a balance change (typed `unknown`: its shape is the ledger's, documented here loosely). */
export const BalanceAnswer = Type.Unsafe<unknown>({
  type: 'object',
  additionalProperties: true,
  properties: {
    points: { type: 'integer' },
    total: { type: 'integer' },
    balance: { type: 'integer' },
    type: { type: 'string', enum: ['loyalty_card'] },
    object: { type: 'string', enum: ['balance'] },
    related_object: { type: 'object', properties: { type: { type: 'string' }, id: { type: 'string' } } },
    operation_type: { type: 'string', enum: ['MANUAL', 'AUTOMATIC'] },
  },
});

export const TransactionQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })),
  starting_after_id: Type.Optional(
    Type.String({ description: 'Cursor: the last transaction id of the previous page' }),
  ),
});
export type TransactionQuery = Static<typeof TransactionQuery>;

export const TransactionList = Type.Unsafe<unknown>({
  type: 'object',
  properties: {
    object: { type: 'string', enum: ['list'] },
    data_ref: { type: 'string', enum: ['data'] },
    data: { type: 'array', items: { type: 'object', additionalProperties: true } },
    has_more: { type: 'boolean' },
    more_starting_after: { type: ['string', 'null'] },
  },
});

export const LotQuery = PagedQuery({
  balance_definition_id: Type.Optional(Type.String()),
});

export const MemberParams = IdParam('memberId', 'Card code or v_ id');
export const CampaignMemberParams = PathParams({ campaignId: 'Loyalty campaign id', memberId: 'Card code or v_ id' });
export const CampaignParams = IdParam('campaignId', 'Campaign id');
