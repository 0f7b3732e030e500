import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSecretParameter, redactUrl } from './redact.ts';

const SECRET = 'S3cretValue0123456789';

describe('redactUrl', () => {
  it('hides the value of secret parameters however the name is written', () => {
    const names = [
      'token',
      'Token',
      'TOKEN',
      '%74oken',
      '%54%4F%4B%45%4E',
      '%2574oken',
      'tok%00en',
      '%EF%BD%94%EF%BD%8F%EF%BD%8B%EF%BD%85%EF%BD%8E', // fullwidth "ｔｏｋｅｎ"
      'secret',
      'api_key',
      'api%5Fkey',
      'apiKey',
      'api-key',
      'auth_token',
      'x-app-token',
      'X-App-Token',
      'access_token',
      'password',
      'signature',
    ];
    for (const name of names) {
      const out = redactUrl(`/v1/channels/chn_1/inbound?a=1&${name}=${SECRET}&b=2`);
      assert.equal(out, `/v1/channels/chn_1/inbound?a=1&${name}=[redacted]&b=2`, name);
    }
  });

  it('redacts every occurrence, after ; separators, first or last', () => {
    assert.equal(redactUrl(`/x?token=${SECRET}&token=${SECRET}2`), '/x?token=[redacted]&token=[redacted]');
    assert.equal(redactUrl(`/x?a=1;token=${SECRET};b=2`), '/x?a=1;token=[redacted];b=2');
    assert.equal(redactUrl(`/x?token=${SECRET}`), '/x?token=[redacted]');
    assert.equal(redactUrl(`/x?token=a=b=${SECRET}`), '/x?token=[redacted]');
    assert.equal(redactUrl(`/x?token=`), '/x?token=[redacted]');
  });

  it('hides a Tally API token whatever the parameter is called, encoded or not', () => {
    assert.equal(redactUrl('/x?q=tly_sk_abcdef&n=1'), '/x?q=[redacted]&n=1');
    assert.equal(redactUrl('/x?q=%74ly_sk_abcdef'), '/x?q=[redacted]');
    assert.equal(redactUrl('/x?tly_sk_abcdef'), '/x?[redacted]');
  });

  it('keeps everything else as it was sent', () => {
    const plain = [
      '/v1/messages',
      '/v1/messages?',
      '/v1/messages?limit=10&direction=in',
      '/x?a=%zz&b=+1',
      '/x?tokens_left',
    ];
    for (const url of plain) {
      assert.equal(redactUrl(url), url);
    }
    assert.equal(redactUrl('/x?keyword=POINTS&phone=%2B385'), '/x?keyword=POINTS&phone=%2B385');
  });

  it('judges names, not values', () => {
    assert.equal(isSecretParameter('direction'), false);
    assert.equal(isSecretParameter('keyword'), false);
    assert.equal(isSecretParameter('%74oken'), true);
    assert.equal(redactUrl('/x?note=token'), '/x?note=token');
  });
});
