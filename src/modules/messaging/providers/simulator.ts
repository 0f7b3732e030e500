import { newId } from '../../../lib/ids.ts';
import type { OutgoingMessage, SendResult } from './types.ts';

// The simulator "provider": nothing leaves the process. Sent messages are kept per number (the
// most recent 100) so the demo and `POST /v1/simulator/messages` can show what the member got.

export class SimulatorInbox {
  private byNumber = new Map<string, { id: string; text: string; at: string }[]>();

  send(msg: OutgoingMessage, at: string): SendResult {
    const list = this.byNumber.get(msg.to) ?? [];
    const id = newId('sm');
    list.push({ id, text: msg.text, at });
    if (list.length > 100) list.shift();
    this.byNumber.set(msg.to, list);
    return { ok: true, providerMessageId: id };
  }

  messagesTo(phone: string) {
    return this.byNumber.get(phone) ?? [];
  }
}
