import { conflict, invalid } from '../lib/errors.ts';
import type { Executor } from '../storage/database.ts';
import type { WorkflowServices } from './services.ts';
import type { CustomerRef } from '../modules/customers/schemas.ts';
import type { CustomerRow } from '../modules/customers/service.ts';
import { programVoucher, type ProgramRow } from '../modules/loyalties/service.ts';
import type { MembershipRow } from '../modules/members/service.ts';

// Workflow "join a program": find or create the customer, issue the card (membership), give it
// the program's initial points. All in the caller's transaction.

export async function resolveCustomer(
  trx: Executor,
  services: WorkflowServices,
  ref: CustomerRef,
): Promise<CustomerRow> {
  if (typeof ref === 'string') return services.customers.get(trx, ref);
  if (ref.id) {
    const row = await services.customers.get(trx, ref.id);
    const { id: _id, ...rest } = ref;
    return Object.keys(rest).length > 0 ? services.customers.update(trx, row, rest) : row;
  }
  if (!ref.source_id && !ref.email && !ref.phone && !ref.name) {
    throw invalid(
      'invalid_customer',
      'Invalid customer',
      'customer needs an id, a source_id, or details to create one',
      [{ field: 'customer', message: 'must identify or describe a customer' }],
    );
  }
  return (await services.customers.upsert(trx, ref)).row;
}

export async function joinProgram(
  trx: Executor,
  services: WorkflowServices,
  program: ProgramRow,
  customer: CustomerRow,
  opts: {
    code?: string;
    metadata?: Record<string, unknown> | null;
    source?: string;
    sourceEventId?: string;
    /** An import from another system: its subscription id, and when the subscription began there. */
    loyaltySubscriptionId?: string;
    createdAt?: string;
  } = {},
): Promise<MembershipRow> {
  // A contact belongs to at most one subscription per program: a member contact of a card of the
  // program (still active) is a member already, through that card.
  const shared = (await services.households.sharedCards(trx, customer.id, program.id)).find(
    (m) => m.status === 'ACTIVE',
  );
  if (shared) {
    throw conflict(
      'member_of_other_subscription',
      'Customer is a member of another subscription of this program',
      `Customer ${customer.id} is a member contact of loyalty card ${shared.code} of campaign ${program.id}; ` +
        'remove it from that household first',
    );
  }
  const membership = await services.members.create(trx, program, customer.id, opts);
  const definition = await services.programs.defaultDefinition(trx, program.id);
  // The default balance row exists from the start, so the hot path never has to create it.
  await services.ledger.lockBalance(trx, { membership, definition, program });
  const initial = programVoucher(program).loyalty_card.points ?? 0;
  if (initial > 0) {
    await services.ledger.applyChange(trx, {
      program,
      membership,
      definition,
      points: initial,
      type: 'POINTS_ADDITION',
      reason: 'Initial points of the loyalty card',
      source: opts.source ?? 'tally',
      operation_type: 'AUTOMATIC',
      source_event_id: opts.sourceEventId,
    });
  } else {
    // No balance change to move it: the new member gets its base tier (points from 0) here, in the
    // joining transaction, whichever way it joined.
    await services.tiers.evaluateMember(trx, program, membership, opts.sourceEventId ?? membership.id);
  }
  // Its anniversaries and membership reminders, from its created_at (an import's past ones are not sent).
  await services.time.memberJoined(trx, program, membership);
  return membership;
}
