import { randomBytes } from 'node:crypto';

// Ids carry Voucherify's prefixes (cust_, camp_, v_, vtx_) so clients that switch on them keep working.
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function randomString(length: number, charset: string = ALPHABET): string {
  // Rejection sampling keeps every character equally likely for any charset size.
  const max = 256 - (256 % charset.length);
  let out = '';
  while (out.length < length) {
    const bytes = randomBytes(length * 2);
    for (let i = 0; i < bytes.length && out.length < length; i++) {
      if (bytes[i] < max) out += charset[bytes[i] % charset.length];
    }
  }
  return out;
}

export type IdPrefix =
  | 'cust' | 'camp' | 'v' | 'vtx' | 'bdef' | 'lot' | 'evt' | 'key' | 'app'
  | 'whep' | 'whatt' | 'job' | 'ern' | 'ltr' | 'tgrp' | 'pp' | 'ord' | 'cev'
  | 'chn' | 'flw' | 'flv' | 'msg' | 'cnv' | 'bc' | 'sm';

export function newId(prefix: IdPrefix, length = 24): string {
  return `${prefix}_${randomString(length)}`;
}
