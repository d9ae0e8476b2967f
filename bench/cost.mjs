// Cost per million turns at Cloudflare's list prices (Workers Paid, before the plan's
// included amounts), from what the bench measured.

export const PRICES = {
  workerRequest: 0.30 / 1e6, // per request
  workerCpuMs: 0.02 / 1e6, // per CPU ms
  objectRequest: 0.15 / 1e6, // per Durable Object request (HTTP, RPC, alarm)
  gbSecond: 12.50 / 1e6, // per GB-s of an active object
  rowRead: 0.001 / 1e6,
  rowWritten: 1.00 / 1e6,
  gbMonth: 0.20, // stored, per GB-month
};
const OBJECT_GB = 128 / 1024; // an object is billed as 128 MB while active

/**
 * One case's lines: [item, quantity per turn, $ per million turns].
 * `m`: { cpuMs, objectRequests, activeMs, rowsRead, rowsWritten, storedBytes }, per turn.
 */
export function costLines(m) {
  const perMillion = 1e6;
  const lines = [
    ['Workers requests', '1', PRICES.workerRequest],
    ['Workers CPU (all of workerd, ms)', m.cpuMs.toFixed(2), m.cpuMs * PRICES.workerCpuMs],
    ['Durable Object requests', m.objectRequests.toFixed(2), m.objectRequests * PRICES.objectRequest],
    ['Durable Object duration (active ms × 128 MB)', m.activeMs.toFixed(1), (m.activeMs / 1000) * OBJECT_GB * PRICES.gbSecond],
    ['rows read', m.rowsRead.toFixed(1), m.rowsRead * PRICES.rowRead],
    ['rows written', m.rowsWritten.toFixed(1), m.rowsWritten * PRICES.rowWritten],
    ['storage, one month (bytes)', m.storedBytes.toFixed(0), (m.storedBytes / 2 ** 30) * PRICES.gbMonth],
  ].map(([item, qty, dollars]) => [item, qty, dollars * perMillion]);
  const total = lines.reduce((sum, [, , d]) => sum + d, 0);
  return { lines, total };
}

/** Prints the cases side by side: item, then per case quantity/turn and $/M turns. */
export function printCostTable(cases) {
  const names = Object.keys(cases);
  const tables = names.map((n) => costLines(cases[n]));
  const rows = [['per turn → $ per million turns', ...names.flatMap((n) => [`${n}: qty/turn`, '$/M turns'])]];
  tables[0].lines.forEach(([item], i) => {
    rows.push([item, ...tables.flatMap((t) => [t.lines[i][1], `$${t.lines[i][2].toFixed(3)}`])]);
  });
  rows.push(['total', ...tables.flatMap((t) => ['', `$${t.total.toFixed(2)}`])]);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  for (const r of rows) console.log(`  ${r.map((cell, c) => String(cell).padEnd(widths[c])).join('  ')}`);
  return Object.fromEntries(names.map((n, i) => [n, tables[i]]));
}
