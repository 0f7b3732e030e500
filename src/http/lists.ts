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
    },
  };
}
