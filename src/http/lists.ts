// Voucherify's list envelope: {object: "list", data_ref, <data_ref>: [...], total}.
export function listOf<T>(dataRef: string, items: T[], total: number, extra: Record<string, unknown> = {}) {
  return { object: 'list' as const, data_ref: dataRef, [dataRef]: items, total, ...extra };
}

/** Schema of a list answer, for the OpenAPI document. */
export function listSchema(dataRef: string, item: object = { type: 'object', additionalProperties: true }) {
  return {
    type: 'object',
    properties: {
      object: { type: 'string', enum: ['list'] },
      data_ref: { type: 'string', enum: [dataRef] },
      [dataRef]: { type: 'array', items: item },
      total: { type: 'integer' },
      has_more: { type: 'boolean' },
      more_starting_after: { type: ['string', 'null'] },
    },
  };
}

/**
 * The envelope of a page from `pageByCreated` (storage/paging.ts): `total` when paged by number,
 * `has_more` and `more_starting_after` (the `starting_after_id` of the next page) always.
 */
export function listPage<T>(
  dataRef: string,
  items: T[],
  page: { total?: number; has_more: boolean; more_starting_after: string | null },
) {
  const { total, has_more, more_starting_after } = page;
  const counted = total === undefined ? {} : { total };
  return { object: 'list' as const, data_ref: dataRef, [dataRef]: items, ...counted, has_more, more_starting_after };
}
