#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx: no build step between a clone and a server.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
const code = await main();
if (code !== undefined && code !== null) process.exitCode = code;
