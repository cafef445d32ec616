// axe-core (from node_modules) run in the page. The page's Content-Security-Policy
// allows scripts from 'self' only, so axe is served as if from the server (a
// routed same-origin URL), not injected inline: the page keeps its real CSP
// while it is checked.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const AXE_PATH = '/__ui-tests/axe.min.js';

/** Routes the axe script into `page`'s context; call before the page opens. */
export async function serveAxe(page) {
  const source = await readFile(AXE, 'utf8');
  await page.context().route(`**${AXE_PATH}`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/javascript; charset=utf-8', body: source }));
}

/** Runs axe on the whole document; resolves to its violations, each with its nodes. */
export async function axe(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.addScriptTag({ url: AXE_PATH });
  }
  return page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ['violations'] });
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    }));
  });
}

function readable(violations) {
  return violations.map((v) => [
    `- [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})`,
    ...v.nodes.slice(0, 10).map((n) => `    ${n.target}\n      ${(n.summary ?? '').replace(/\n/g, '\n      ')}`),
    v.nodes.length > 10 ? `    ... and ${v.nodes.length - 10} more` : '',
  ].filter(Boolean).join('\n')).join('\n');
}

/** Fails on serious or critical violations (each rule, element and reason printed); prints the minor ones. */
export function check(violations, what) {
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const minor = violations.filter((v) => !bad.includes(v));
  if (minor.length) console.log(`axe ${what}: ${minor.length} minor/moderate (not failing):\n${readable(minor)}`);
  if (bad.length) assert.fail(`axe ${what}: ${bad.length} serious or critical violation(s):\n${readable(bad)}`);
}
