import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pointsFlow } from '../../src/modules/messaging/flows/examples.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { createChannel, createPointsFlow, seedMember, simulate } from './setup.ts';

// Two programs that both want POINTS: each on its own number (flows bound to their channels), or
// sharing one number (the sender's membership picks the program). Neither is a 409.

describe('keywords across programs', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  it('two programs, each on its own channel, both answer POINTS with their own reply', async () => {
    const coffee = await seedMember(t, { phone: '+385911200001', points: 120, name: 'Ana' });
    const books = await seedMember(t, { phone: '+385911200002', points: 340, name: 'Bo' });
    const coffeeChannel = await createChannel(t, { provider: 'simulator', sender: '+10000002001' });
    const booksChannel = await createChannel(t, { provider: 'simulator', sender: '+10000002002' });
    await createPointsFlow(t, coffee.program.id, { channels: [coffeeChannel.id] });
    const second = await t.api('POST', '/v1/flows', pointsFlow(books.program.id, { channels: [booksChannel.id] }));
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.match((await simulate(t, '+385911200001', 'POINTS', coffeeChannel.id))[0], /^Hi Ana, you have 120 points/);
    assert.match((await simulate(t, '+385911200002', 'POINTS', booksChannel.id))[0], /^Hi Bo, you have 340 points/);
  });

  it('two programs sharing one number both answer POINTS: the sender gets the program they belong to', async () => {
    const coffee = await seedMember(t, { phone: '+385911200011', points: 15, name: 'Cid' });
    const books = await seedMember(t, { phone: '+385911200012', points: 2500, name: 'Dora' });
    const shared = await createChannel(t, { provider: 'simulator', sender: '+10000002011' });
    const keywords = [{ keywords: ['SALDO'], match: 'first_word' as const }];
    await createPointsFlow(t, coffee.program.id, { channels: [shared.id], triggers: keywords });
    const onShared = (programId: string) => pointsFlow(programId, { channels: [shared.id], triggers: keywords });
    const second = await t.api('POST', '/v1/flows', onShared(books.program.id));
    assert.equal(second.status, 200, `no trigger_in_use across programs: ${JSON.stringify(second.body)}`);
    // Unbound flows (every channel) of two programs do not clash either.
    const everywhere = [{ keywords: ['BALANS'], match: 'first_word' as const }];
    await createPointsFlow(t, coffee.program.id, { triggers: everywhere });
    const unbound = await t.api('POST', '/v1/flows', pointsFlow(books.program.id, { triggers: everywhere }));
    assert.equal(unbound.status, 200, JSON.stringify(unbound.body));

    for (const word of ['saldo', 'balans']) {
      assert.match((await simulate(t, '+385911200011', word, shared.id))[0], /^Hi Cid, you have 15 points/, word);
      assert.match((await simulate(t, '+385911200012', word, shared.id))[0], /^Hi Dora, you have 2500 points/, word);
    }
    // A member of neither gets the oldest flow's answer for strangers (its program's name).
    const stranger = await simulate(t, '+385911200019', 'SALDO', shared.id);
    assert.equal(stranger[0], `We couldn't find a ${coffee.program.name} card for this number. Reply JOIN to join.`);
    const messages = await t.api('GET', `/v1/messages?channel_id=${shared.id}&direction=in&phone=%2B385911200012`);
    assert.ok(messages.body.messages.every((m: any) => m.program_id === books.program.id));

    // Within one program a keyword still has one flow per channel binding; the refusal says what to do.
    const clash = await t.api('POST', '/v1/flows', onShared(coffee.program.id));
    assert.equal(clash.status, 409);
    assert.equal(clash.body.key, 'trigger_in_use');
    assert.match(clash.body.details, /bind each flow to its own channels/);
  });
});
