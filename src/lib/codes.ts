import { randomString } from './ids.ts';

// Card and voucher codes (loyalties, members, vouchers) from Voucherify's code_config: `pattern`
// (each # takes a random character of `charset`) overrides `length`; `prefix` and `postfix` wrap
// the random part.

export interface CodeConfig {
  length: number;
  charset: string;
  prefix: string;
  postfix: string;
  pattern: string;
}

export const ALPHANUMERIC = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

export const DEFAULT_CODE_CONFIG: CodeConfig = {
  length: 8,
  charset: ALPHANUMERIC,
  prefix: '',
  postfix: '',
  pattern: '########',
};

export function validateCodeConfig(c: Partial<CodeConfig>): string | null {
  const charset = c.charset ?? '';
  if (new Set(charset).size < 2) return 'charset needs at least 2 distinct characters';
  if (charset.length > 256) return 'charset is limited to 256 characters';
  if (/\s/.test(charset)) return 'charset must not contain whitespace';
  const slots = c.pattern ? [...c.pattern].filter((ch) => ch === '#').length : (c.length ?? 0);
  if (!Number.isInteger(slots) || slots < 1) return 'pattern needs at least one # (or length must be at least 1)';
  if (slots > 64) return 'codes are limited to 64 random characters';
  if (/\s/.test((c.prefix ?? '') + (c.postfix ?? '') + (c.pattern ?? ''))) return 'codes must not contain whitespace';
  return null;
}

/** The number of distinct codes the configuration can produce. */
export function codeSpace(c: CodeConfig): number {
  const slots = c.pattern ? [...c.pattern].filter((ch) => ch === '#').length : c.length;
  return new Set(c.charset).size ** slots;
}

export function generateCode(c: CodeConfig): string {
  const charset = [...new Set(c.charset)].join('');
  let core: string;
  if (c.pattern) {
    const chars = [...c.pattern];
    const random = randomString(chars.filter((ch) => ch === '#').length, charset);
    let i = 0;
    core = chars.map((ch) => (ch === '#' ? random[i++] : ch)).join('');
  } else {
    core = randomString(c.length, charset);
  }
  return `${c.prefix ?? ''}${core}${c.postfix ?? ''}`;
}

/** Every code of a small code space (for the last free codes, when random picks keep colliding). */
export function allCodes(c: CodeConfig, limit = 4096): string[] | null {
  if (codeSpace(c) > limit) return null;
  const charset = [...new Set(c.charset)];
  const template = c.pattern ? [...c.pattern] : Array.from({ length: c.length }, () => '#');
  let cores = [''];
  for (const ch of template) {
    cores = ch === '#' ? cores.flatMap((x) => charset.map((y) => x + y)) : cores.map((x) => x + ch);
  }
  return cores.map((core) => `${c.prefix ?? ''}${core}${c.postfix ?? ''}`);
}
