// The import path the modules use today. The storage layer itself is database.ts (the interface
// and openDatabase), sqlite/ and postgres/ (one backend each) and hot.ts (the hot statements).
export {
  isUniqueViolation,
  openDatabase,
  parseDatabaseUrl,
  type Database,
  type DialectName,
  type Executor,
  type OpenOptions,
  type TransactionOptions,
} from './database.ts';
export { sqliteInTransaction } from './sqlite/statements.ts';
