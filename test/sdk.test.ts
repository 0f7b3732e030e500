import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdkModule from '@voucherify/sdk';
import { assertLedgerInvariants } from './helpers/invariants.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

// The official Voucherify SDK, unchanged, driving Tally: only apiUrl points elsewhere.
const { VoucherifyServerSide } = ((sdkModule as any).default ?? sdkModule) as typeof import('@voucherify/sdk');

describe('official @voucherify/sdk against Tally', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await assertLedgerInvariants(t.server.ctx.database.db);
    await t.close();
  });

  it('creates a customer, a loyalty campaign and a member, moves points and lists transactions', async () => {
    const client = VoucherifyServerSide({ applicationId: t.appId, secretKey: t.token, apiUrl: t.url });

    const customer: any = await client.customers.create({
      source_id: 'sdk-alex',
      name: 'Alex Doe',
      email: 'alex@example.com',
      phone: '+385 91 624 2493',
      metadata: { favourite: 'espresso' },
    });
    assert.match(customer.id, /^cust_/);
    assert.equal(customer.source_id, 'sdk-alex');
    assert.equal(customer.object, 'customer');
    assert.equal((customer as any).phone, '+385916242493');
    assert.deepEqual(customer.metadata, { favourite: 'espresso' });

    const campaign: any = await client.loyalties.create({
      name: 'SDK Loyalty programme',
      campaign_type: 'LOYALTY_PROGRAM',
      type: 'AUTO_UPDATE',
      join_once: true,
      vouchers_count: 0,
      voucher: {
        type: 'LOYALTY_CARD',
        loyalty_card: { points: 10 },
        code_config: { pattern: 'SDK-####', charset: '0123456789' },
      },
    } as any);
    assert.match(campaign.id, /^camp_/);
    assert.equal(campaign.object, 'campaign');
    assert.equal(campaign.campaign_type, 'LOYALTY_PROGRAM');
    assert.equal(campaign.voucher.type, 'LOYALTY_CARD');
    assert.equal(campaign.voucher.loyalty_card.points, 10);

    const member: any = await client.loyalties.createMember(campaign.id, { customer: customer.id } as any);
    assert.match(member.id, /^v_/);
    assert.match(member.code, /^SDK-\d{4}$/);
    assert.equal(member.type, 'LOYALTY_CARD');
    assert.equal(member.object, 'voucher');
    assert.equal(member.holder_id, customer.id);
    assert.equal(member.campaign_id, campaign.id);
    assert.equal(member.loyalty_card.points, 10);
    assert.equal(member.loyalty_card.balance, 10);

    const added: any = await client.loyalties.addOrRemoveCardBalance(
      member.code,
      { points: 40, reason: 'Spring time', source_id: 'dd-pnts-uion' } as any,
      campaign.id,
    );
    assert.deepEqual(
      {
        points: added.points,
        total: added.total,
        balance: added.balance,
        type: added.type,
        object: added.object,
        related_object: added.related_object,
        operation_type: added.operation_type,
      },
      {
        points: 40,
        total: 50,
        balance: 50,
        type: 'loyalty_card',
        object: 'balance',
        related_object: { type: 'voucher', id: member.id },
        operation_type: 'MANUAL',
      },
    );
    // Without the campaign id: the member-only path.
    const removed: any = await client.loyalties.addOrRemoveCardBalance(member.code, {
      points: -15,
      reason: 'correction',
    } as any);
    assert.equal(removed.points, -15);
    assert.equal(removed.balance, 35);
    assert.equal(removed.total, 35);

    const fetched: any = await client.loyalties.getMember(campaign.id, member.code);
    assert.equal(fetched.id, member.id);
    assert.equal(fetched.loyalty_card.balance, 35);
    assert.equal(fetched.loyalty_card.points, 35);
    assert.equal(fetched.loyalty_card.subtracted_points, 15);
    const byId: any = await client.loyalties.getMember(null as any, member.id);
    assert.equal(byId.code, member.code);

    const txs: any = await client.loyalties.listCardTransactions(member.code, campaign.id, { limit: 2 } as any);
    assert.equal(txs.object, 'list');
    assert.equal(txs.data_ref, 'data');
    assert.equal(txs.data.length, 2);
    assert.equal(txs.has_more, true);
    assert.deepEqual(
      txs.data.map((x: any) => [x.type, x.details.balance.points, x.details.balance.balance]),
      [
        ['POINTS_REMOVAL', -15, 35],
        ['POINTS_ADDITION', 40, 50],
      ],
    );
    const spring = txs.data[1];
    assert.match(spring.id, /^vtx_/);
    assert.equal(spring.source_id, 'dd-pnts-uion');
    assert.equal(spring.reason, 'Spring time');
    assert.equal(spring.voucher_id, member.id);
    assert.equal(spring.campaign_id, campaign.id);
    assert.equal(spring.related_transaction_id, null);
    const rest: any = await client.loyalties.listCardTransactions(
      member.code,
      undefined as any,
      { limit: 2, starting_after_id: txs.more_starting_after } as any,
    );
    assert.equal(rest.has_more, false);
    assert.deepEqual(
      rest.data.map((x: any) => [x.type, x.points ?? x.details.balance.points]),
      [['POINTS_ADDITION', 10]],
    );

    // A second card for the same customer in a join-once campaign is refused with a VoucherifyError.
    await assert.rejects(
      () => client.loyalties.createMember(campaign.id, { customer: customer.id } as any),
      (err: any) => err.code === 409 && err.key === 'already_joined',
    );
  });

  it('surfaces Tally errors as VoucherifyError with code and key', async () => {
    const client = VoucherifyServerSide({ applicationId: t.appId, secretKey: t.token, apiUrl: t.url });
    await assert.rejects(
      () => client.loyalties.getMember(null as any, 'no-such-card'),
      (err: any) => err.code === 404 && typeof err.key === 'string',
    );
    const bad = VoucherifyServerSide({ applicationId: t.appId, secretKey: 'wrong', apiUrl: t.url });
    await assert.rejects(
      () => bad.customers.list({} as any),
      (err: any) => err.code === 401,
    );
  });
});
