// Start the Unleash server dualrun uses in tests and in the local stack.
//
// Configuration comes from the environment (never from the command line, where tokens would
// show in `ps`):
//   DUALRUN_UNLEASH_DB_URL   postgresql://user[:password]@host:port/database (its own database)
//   DUALRUN_UNLEASH_HOST     listen address (default 127.0.0.1)
//   DUALRUN_UNLEASH_PORT     listen port (default 4242)
//   INIT_ADMIN_API_TOKENS, INIT_BACKEND_API_TOKENS, SEND_TELEMETRY, CHECK_VERSION, LOG_LEVEL:
//                            read by unleash-server itself.
import { start } from 'unleash-server';

const raw = process.env.DUALRUN_UNLEASH_DB_URL;
if (!raw) {
  console.error('DUALRUN_UNLEASH_DB_URL is not set');
  process.exit(2);
}
const url = new URL(raw);
const db = {
  host: url.hostname || '127.0.0.1',
  port: Number(url.port || 5432),
  user: decodeURIComponent(url.username || 'postgres'),
  password: decodeURIComponent(url.password || ''),
  database: decodeURIComponent(url.pathname.replace(/^\//, '') || 'unleash'),
  ssl: false,
};

const unleash = await start({
  db,
  server: {
    host: process.env.DUALRUN_UNLEASH_HOST || '127.0.0.1',
    port: Number(process.env.DUALRUN_UNLEASH_PORT || 4242),
    gracefulShutdownEnable: true,
  },
  authentication: { type: 'open-source', enableApiToken: true },
  versionCheck: { enable: false },
  logLevel: process.env.LOG_LEVEL || 'warn',
});

const stop = async (signal) => {
  try {
    await unleash.stop();
  } finally {
    process.exit(signal === 'SIGINT' ? 130 : 0);
  }
};
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));
