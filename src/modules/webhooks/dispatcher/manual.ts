import type { Executor } from '../../../storage/database.ts';
import type { Endpoints } from './endpoints.ts';
import type { Slots } from './slots.ts';
import type { AttemptRecord, Claimed, OutEvent } from './types.ts';

/** What a manual attempt needs of the dispatcher. */
export interface ManualAttemptHost {
  db: Executor;
  endpoints: Endpoints;
  slots: Slots;
  /** Sends a claimed delivery whose slot is reserved; `resolve` gets the attempt once recorded. */
  launch(c: Claimed, resolve: (a: AttemptRecord) => void): Promise<void>;
  /** Records the answers at once when no pass will (the dispatcher is stopped). */
  recordIfStopped(): Promise<void>;
}

/**
 * One attempt of `event` to `endpointId` now, outside the retry schedule (resend, test): it holds
 * no lease and reschedules nothing. Waits for the answer and returns the recorded attempt.
 */
export async function attemptNow(
  host: ManualAttemptHost,
  endpointId: string,
  event: OutEvent,
  trigger: 'manual' | 'test',
): Promise<AttemptRecord> {
  const endpoint = await host.db
    .selectFrom('webhook_endpoints')
    .selectAll()
    .where('id', '=', endpointId)
    .executeTakeFirstOrThrow();
  host.endpoints.put(endpoint);
  const delivery = await host.db
    .selectFrom('webhook_deliveries')
    .select('attempts')
    .where('endpoint_id', '=', endpointId)
    .where('event_id', '=', event.id)
    .executeTakeFirst();
  host.slots.reserve(endpointId);
  let sent!: Promise<void>;
  const record = new Promise<AttemptRecord>((resolve) => {
    sent = host.launch(
      {
        seq: null,
        endpoint_id: endpointId,
        event,
        attempt: (delivery?.attempts ?? 0) + 1,
        manual: true,
        trigger,
        direct: true,
      },
      resolve,
    );
  });
  // Recorded by the next pass (workers on) or, with workers off, at once.
  await sent;
  await host.recordIfStopped();
  return record;
}
