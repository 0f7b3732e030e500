import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.ts';

export function registerHealth(app: FastifyInstance, ctx: AppContext, state: { shuttingDown: boolean }): void {
  app.get(
    '/healthz',
    { schema: { tags: ['operations'], summary: 'Liveness: the process answers' }, config: { public: true } },
    async () => ({ status: 'ok' }),
  );
  app.get(
    '/readyz',
    {
      schema: { tags: ['operations'], summary: 'Readiness: the database answers and the server is not shutting down' },
      config: { public: true },
    },
    async (_req, reply) => {
      const database = await ctx.database.ping();
      const ready = database && !state.shuttingDown;
      reply.status(ready ? 200 : 503);
      return {
        status: ready ? 'ready' : 'unavailable',
        database: database ? 'ok' : 'unreachable',
        shutting_down: state.shuttingDown,
      };
    },
  );
}
