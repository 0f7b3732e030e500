import BetterSqlite3 from 'better-sqlite3';
const db = new BetterSqlite3(process.argv[2]);
console.log(db.prepare('select type, length(data) n from outbox_events order by seq desc limit 4').all());
console.log(db.prepare('select length(details) n from ledger_entries order by seq desc limit 1').all());
