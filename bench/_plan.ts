import BetterSqlite3 from 'better-sqlite3';
const db = new BetterSqlite3(process.argv[2]);
const sql = `select m.id, p.id, d.id, c.id from memberships m inner join programs p on p.id = m.program_id inner join balance_definitions d on d.program_id = m.program_id and d.is_default = 1 left join customers c on c.id = m.customer_id where p.deleted_at is null and m.code = ?`;
console.log(db.prepare('explain query plan ' + sql).all('x'));
