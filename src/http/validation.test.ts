import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeValidationErrors, makeAjv, type AjvErrorObject } from './validation.ts';

const bodyAjv = makeAjv(false);

/** The field errors a body schema gives for a value (none when it is valid). */
function errorsOf(schema: object, data: unknown, opts: { bodyMissing?: boolean } = {}) {
  const validate = bodyAjv.compile(schema);
  if (validate(data)) return [];
  return describeValidationErrors(validate.errors as AjvErrorObject[], 'body', opts);
}
const one = (schema: object, data: unknown) => {
  const errors = errorsOf(schema, data);
  assert.equal(errors.length, 1, JSON.stringify(errors));
  return `${errors[0]!.field} ${errors[0]!.message}`;
};
const prop = (schema: object) => ({ type: 'object', properties: { x: schema } });

describe('describeValidationErrors', () => {
  it('names the allowed values and the forbidden one', () => {
    assert.equal(one(prop({ type: 'string', enum: ['in', 'out'] }), { x: 'sideways' }), 'x must be one of: in, out');
    assert.equal(one(prop({ enum: [1, null, 'a'] }), { x: 2 }), 'x must be one of: 1, null, a');
    assert.equal(one(prop({ type: 'integer', not: { const: 0 } }), { x: 0 }), 'x must not be 0');
    assert.equal(one(prop({ not: { enum: ['a', 'b'] } }), { x: 'a' }), 'x must not be one of: a, b');
    assert.equal(one(prop({ const: 'MULTIPLY' }), { x: 'M' }), 'x must be MULTIPLY');
  });

  it('says which type is expected', () => {
    assert.equal(one(prop({ type: 'integer' }), { x: 1.5 }), 'x must be an integer');
    assert.equal(one(prop({ type: ['string', 'null'] }), { x: 1 }), 'x must be a string or null');
    const union = prop({ type: ['integer', 'string', 'null'] });
    assert.equal(one(union, { x: true }), 'x must be an integer, a string or null');
    assert.equal(one(prop({ type: 'boolean' }), { x: 'yes' }), 'x must be true or false');
    assert.equal(one({ type: 'object' }, [1]), 'body must be an object');
  });

  it('says what is missing from an absent body', () => {
    assert.deepEqual(errorsOf({ type: 'array' }, null, { bodyMissing: true }), [
      { field: 'body', message: 'is required: send an array as JSON' },
    ]);
  });

  it('states limits in words', () => {
    assert.equal(one(prop({ type: 'integer', minimum: 1 }), { x: 0 }), 'x must be at least 1');
    assert.equal(one(prop({ type: 'integer', maximum: 100 }), { x: 101 }), 'x must be at most 100');
    assert.equal(one(prop({ type: 'number', exclusiveMinimum: 0 }), { x: 0 }), 'x must be greater than 0');
    assert.equal(one(prop({ type: 'number', exclusiveMaximum: 5 }), { x: 5 }), 'x must be less than 5');
    assert.equal(one(prop({ type: 'string', minLength: 1 }), { x: '' }), 'x must not be empty');
    assert.equal(one(prop({ type: 'string', minLength: 3 }), { x: 'ab' }), 'x must be at least 3 characters long');
    assert.equal(one(prop({ type: 'string', maxLength: 2 }), { x: 'abc' }), 'x must be at most 2 characters long');
    assert.equal(one(prop({ type: 'array', minItems: 1 }), { x: [] }), 'x must have at least one item');
    assert.equal(one(prop({ type: 'array', maxItems: 1 }), { x: [1, 2] }), 'x must have at most 1 item');
    assert.equal(one(prop({ type: 'string', pattern: '^\\S+$' }), { x: 'a b' }), 'x must match the pattern ^\\S+$');
    assert.equal(one(prop({ type: 'string', format: 'date' }), { x: '2024-13-40' }), 'x must be a date (YYYY-MM-DD)');
    assert.equal(one(prop({ type: 'string', format: 'email' }), { x: 'nope' }), 'x must be an email address');
  });

  it('names missing and unknown fields with their path, listing the allowed ones', () => {
    const schema = {
      type: 'object',
      properties: {
        customer: {
          type: 'object',
          required: ['source_id'],
          additionalProperties: false,
          properties: { source_id: {}, name: {} },
        },
      },
    };
    assert.deepEqual(errorsOf(schema, { customer: { nmae: 'x' } }), [
      { field: 'customer.source_id', message: 'is required' },
      { field: 'customer.nmae', message: 'is not allowed (allowed: source_id, name)' },
    ]);
  });

  it('names array items with brackets, an array body as body[i]', () => {
    const item = { type: 'object', properties: { points: { type: 'integer', minimum: 1 } } };
    const steps = { type: 'object', properties: { steps: { type: 'array', items: item } } };
    assert.equal(one(steps, { steps: [{ points: 1 }, { points: 0 }] }), 'steps[1].points must be at least 1');
    assert.equal(one({ type: 'array', items: item }, [{ points: 0 }]), 'body[0].points must be at least 1');
  });

  it('answers a oneOf with the branch the value was meant for, or with the forms it may take', () => {
    const customer = {
      oneOf: [
        { type: 'string', minLength: 1 },
        { type: 'object', properties: { source_id: { type: 'string' } } },
      ],
    };
    assert.equal(one(prop(customer), { x: 5 }), 'x must be a string or an object');
    assert.equal(one(prop(customer), { x: '' }), 'x must not be empty');
    assert.equal(one(prop(customer), { x: { source_id: 5 } }), 'x.source_id must be a string');
    const mapping = {
      oneOf: [
        {
          type: 'object',
          required: ['type', 'multiplier'],
          properties: { type: { const: 'MULTIPLY' }, multiplier: { type: 'number', exclusiveMinimum: 0 } },
        },
        {
          type: 'object',
          required: ['type', 'points'],
          properties: { type: { const: 'CUSTOM' }, points: { type: 'integer' } },
        },
      ],
    };
    const rules = { type: 'object', additionalProperties: mapping };
    const given = { ern_1: { type: 'BOGUS' }, ern_10: { type: 'MULTIPLY', multiplier: -1 }, ern_2: 5 };
    assert.deepEqual(errorsOf(rules, given), [
      { field: 'ern_1.type', message: 'must be one of: MULTIPLY, CUSTOM' },
      { field: 'ern_10.multiplier', message: 'must be greater than 0' },
      { field: 'ern_2', message: 'must be an object' },
    ]);
  });

  it('describes query parameters (coerced from strings) the same way', () => {
    const queryAjv = makeAjv(true);
    const validate = queryAjv.compile({ type: 'object', properties: { limit: { type: 'integer', maximum: 100 } } });
    const query = { limit: '1000' };
    assert.equal(validate(query), false);
    assert.deepEqual(describeValidationErrors(validate.errors as AjvErrorObject[], 'querystring'), [
      { field: 'limit', message: 'must be at most 100' },
    ]);
  });
});
