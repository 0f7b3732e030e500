import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Every script and style of the console is served by Tally from its own files and from npm
// packages (htmx, Chart.js): nothing is fetched from the internet, and the CSP allows only 'self'.

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
// The packages' main files sit in their dist/ folders, beside the browser builds served here.
const distOf = (pkg: string) => dirname(require.resolve(pkg));

export interface Asset {
  type: string;
  body: Buffer;
}

export function loadAssets(): Map<string, Asset> {
  const js = 'text/javascript; charset=utf-8';
  return new Map<string, Asset>([
    ['htmx.min.js', { type: js, body: readFileSync(join(distOf('htmx.org'), 'htmx.min.js')) }],
    ['chart.umd.min.js', { type: js, body: readFileSync(join(distOf('chart.js'), 'chart.umd.min.js')) }],
    ['console.js', { type: js, body: readFileSync(join(here, 'assets', 'console.js')) }],
    ['console.css', { type: 'text/css; charset=utf-8', body: readFileSync(join(here, 'assets', 'console.css')) }],
  ]);
}

/** Strict: scripts, styles, images and requests from this origin only; no inline script or style. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // Only an empty style attribute: htmx writes one on an element it swaps into the flow editor's
  // page (the hash is that of the empty string, so no style can be injected through it).
  "style-src-attr 'unsafe-hashes' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');
