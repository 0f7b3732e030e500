import {
  AnyObject,
  Answer,
  IdParam,
  Nullable,
  PagedQuery,
  StartingAfterId,
  type Static,
  StringEnum,
  Type,
} from '../../http/schema.ts';

const Address = Nullable(
  Type.Object({
    city: Type.Optional(Nullable(Type.String())),
    state: Type.Optional(Nullable(Type.String())),
    line_1: Type.Optional(Nullable(Type.String())),
    line_2: Type.Optional(Nullable(Type.String())),
    country: Type.Optional(Nullable(Type.String())),
    postal_code: Type.Optional(Nullable(Type.String())),
  }),
);

export const CustomerBody = Type.Object({
  source_id: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 200 }))),
  name: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
  email: Type.Optional(Nullable(Type.String({ maxLength: 320, format: 'email' }))),
  phone: Type.Optional(Nullable(Type.String({ maxLength: 40 }))),
  description: Type.Optional(Nullable(Type.String({ maxLength: 5000 }))),
  birthdate: Type.Optional(Nullable(Type.String({ format: 'date' }))),
  birthday: Type.Optional(Nullable(Type.String({ format: 'date' }))),
  address: Type.Optional(Address),
  metadata: Type.Optional(Nullable(AnyObject())),
});
export type CustomerInput = Static<typeof CustomerBody>;

export const CustomerListQuery = PagedQuery({
  ...StartingAfterId,
  email: Type.Optional(Type.String()),
  phone: Type.Optional(Type.String({ description: 'Find customers by phone (any format; compared in E.164)' })),
  name: Type.Optional(Type.String()),
  source_id: Type.Optional(Type.String()),
  order: Type.Optional(StringEnum(['created_at', '-created_at'])),
});
export type CustomerListQuery = Static<typeof CustomerListQuery>;

export const Customer = Answer('customer');
export const CustomerParams = IdParam('customerId', 'Customer id (cust_...) or source_id');

/** A customer named by id or source_id, or given whole (created or updated on the way). */
export const CustomerRef = Type.Unsafe<string | (CustomerInput & { id?: string })>({
  oneOf: [
    { type: 'string', minLength: 1, maxLength: 200 },
    { ...CustomerBody, properties: { ...CustomerBody.properties, id: { type: 'string' } } },
  ],
});
export type CustomerRef = Static<typeof CustomerRef>;
