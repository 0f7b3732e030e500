// The ceiling of the HTTP layer: an empty Fastify route that parses a JSON body and answers JSON,
// in its own process, like the Tally server under test.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.post('/empty', async () => ({ ok: true }));
const port = Number(process.env.PORT ?? 0);
await app.listen({ port, host: '127.0.0.1' });
const addr = app.server.address();
process.stdout.write(`listening ${typeof addr === 'object' && addr ? addr.port : port}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
