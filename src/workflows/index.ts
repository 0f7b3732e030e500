import type { AppContext } from '../context.ts';
import type { CustomerRef } from '../modules/customers/schemas.ts';
import type { CustomerRow } from '../modules/customers/service.ts';
import type { OrderInput } from '../modules/earning/schemas.ts';
import type { OrderRow } from '../modules/earning/service.ts';
import type { ProgramRow } from '../modules/loyalties/service.ts';
import type { Executor } from '../storage/database.ts';
import { type ActivityInput, ingestActivity, recordOrder } from './ingest-activity.ts';
import { joinProgram, resolveCustomer } from './join-program.ts';
import type { WorkflowServices } from './services.ts';

export type JoinOptions = Parameters<typeof joinProgram>[4];

/**
 * The actions that span modules, bound to the services they call (built once by the container in
 * `src/services.ts`). Routes and other modules receive this object (or the one function they need)
 * instead of importing `src/workflows/`: modules never depend on workflows, only the reverse.
 */
export class Workflows {
  constructor(
    private ctx: AppContext,
    private services: WorkflowServices,
  ) {}

  /** Issues a card to the customer, with its balance row and the program's initial points. */
  joinProgram = (trx: Executor, program: ProgramRow, customer: CustomerRow, opts?: JoinOptions) =>
    joinProgram(trx, this.services, program, customer, opts);

  /** Finds the customer a request names, creating or updating it from the details it gives. */
  resolveCustomer = (trx: Executor, ref: CustomerRef) => resolveCustomer(trx, this.services, ref);

  /** Ingests a custom event or a paid order: customer, cards, rules, points, all in `trx`. */
  ingestActivity = (trx: Executor, input: ActivityInput) => ingestActivity(this.ctx, trx, this.services, input);

  /** Creates or updates an order; a newly paid one is ingested as an `order.paid` activity. */
  recordOrder = (trx: Executor, input: OrderInput, existing?: OrderRow) =>
    recordOrder(this.ctx, trx, this.services, input, existing);
}
