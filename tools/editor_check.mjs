// Open every example workflow in a real ComfyUI editor (headless Chromium) and check it.
//
//   node tools/editor_check.mjs --url http://127.0.0.1:8188 --workflows example_workflows --out DIR
//        [--pack comfyui-llm-assist] [--node-modules /path/to/node_modules] [--chromium /usr/bin/chromium] [--figures]
//
// Usually started by tools/editor_check.py, which also starts ComfyUI. Per workflow it records, in
// DIR/report.json: dialogs (e.g. missing nodes), error toasts, console errors and page errors that
// appeared while loading it (those of the bare page load are reported apart as "baseline"), nodes
// the editor does not know, links whose type differs from the source output or that the target
// input does not accept, differences between the file and the editor's own serialization of it
// (node types, widgets_values, links by input name), nodes smaller than the editor's minimum size,
// and the API prompt the editor would queue (DIR/<name>.prompt.json). It saves a screenshot of the
// graph (DIR/<name>.png); with --figures also the README panels (DIR/<name>-panel-N.png, 100 % zoom)
// and the template thumbnail (DIR/<name>-thumbnail.png). A self-test loads a workflow with an unknown node and must see it flagged.
// Requests to api.comfy.org (registry look-ups, which fail offline) are listed as "ignored".
// Exit code 1 when any workflow has a problem.
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : 'true']);
  return acc;
}, []));
const url = args.url || 'http://127.0.0.1:8188';
const wfDir = args.workflows || 'example_workflows';
const outDir = args.out || 'output/editor_check';
const pack = args.pack || 'comfyui-llm-assist';
const nodeModules = args['node-modules'] || process.env.PLAYWRIGHT_NODE_MODULES || '/work/pw/node_modules';
const require = createRequire(path.join(path.resolve(nodeModules), 'noop.js'));
const { chromium } = require('playwright-core');
fs.mkdirSync(outDir, { recursive: true });

const names = fs.readdirSync(wfDir).filter(f => f.endsWith('.json')).map(f => f.slice(0, -5)).sort();
const report = { url, pack, templates: null, baseline: null, workflows: {}, selftest: null, ok: true };

// ---------------------------------------------------------------- the template listing
const templates = await (await fetch(`${url}/api/workflow_templates`)).json();
const listed = templates[pack] || [];
report.templates = { listed, missing: names.filter(n => !listed.includes(n)) };
if (report.templates.missing.length) report.ok = false;

// ---------------------------------------------------------------- the browser
const browser = await chromium.launch({
  executablePath: args.chromium || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
// tall enough for a figure panel at 100 % zoom (the tallest example column is about 1600 graph units)
const context = await browser.newContext({ viewport: { width: 2000, height: 1900 } });
const page = await context.newPage();
let events = [];
page.on('console', m => { if (m.type() === 'error') events.push({ kind: 'console', text: m.text(), at: m.location().url }); });
page.on('pageerror', e => events.push({ kind: 'pageerror', text: String(e && e.message) }));
page.on('requestfailed', r => events.push({ kind: 'requestfailed', text: `${r.url()} ${r.failure()?.errorText}` }));
page.on('response', r => { if (r.status() >= 400) events.push({ kind: 'http', text: `${r.status()} ${r.url()}` }); });

await page.goto(url, { waitUntil: 'domcontentloaded' });
await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph && window.app.canvas, null, { timeout: 180000 });
await page.waitForTimeout(3000);
await page.evaluate(async () => {
  const set = window.app.extensionManager?.setting?.set;
  const settings = { 'Comfy.Minimap.Visible': false, 'Comfy.Graph.CanvasMenu': false, 'Comfy.Graph.CanvasInfo': false,
    // 1.27 draws grey boxes without text below a zoom set by the minimum font size; 0 turns that off
    'LiteGraph.Canvas.MinFontSizeForLOD': 0, 'Comfy.Workflow.ShowMissingNodesWarning': true };
  for (const [k, v] of Object.entries(settings)) { try { await set.call(window.app.extensionManager.setting, k, v); } catch (e) { /* older editor */ } }
});

async function dialogs() {
  return page.evaluate(() => [...document.querySelectorAll('.p-dialog, .comfy-modal')]
    .filter(d => d.offsetParent !== null || getComputedStyle(d).display !== 'none' && d.getBoundingClientRect().width > 0)
    .map(d => d.innerText.trim().slice(0, 500)));
}

async function closeDialogs() {
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Escape');
    await page.waitForTimeout(200);
  }
  await page.evaluate(() => document.querySelectorAll('.p-dialog-close-button, .p-toast-close-button').forEach(b => b.click()));
}

// a fresh user gets the "Get Started with a Template" dialog: record it with the page load's noise and close it
report.baseline = events;
report.baselineDialogs = await dialogs();
await closeDialogs();
events = [];

async function inspect(wf) {
  return page.evaluate(async (wf) => {
    const { app, LiteGraph } = window;
    const g = app.graph;
    const problems = [];
    const unknown = g.nodes.filter(n => !LiteGraph.registered_node_types[n.type] || n.has_errors)
      .map(n => `${n.id} ${n.type}`);
    const linkList = g.links instanceof Map ? [...g.links.values()] : Object.values(g.links || {});
    for (const l of linkList) {
      if (!l) continue;
      const o = g.getNodeById(l.origin_id), t = g.getNodeById(l.target_id);
      const out = o?.outputs?.[l.origin_slot], inp = t?.inputs?.[l.target_slot];
      if (!out || !inp) { problems.push(`link ${l.id}: dangling (${l.origin_id}:${l.origin_slot} -> ${l.target_id}:${l.target_slot})`); continue; }
      if (l.type !== out.type) problems.push(`link ${l.id}: type ${l.type} but source ${o.type}.${out.name} is ${out.type}`);
      if (!LiteGraph.isValidConnection(out.type, inp.type)) problems.push(`link ${l.id}: ${o.type}.${out.name} (${out.type}) -> ${t.type}.${inp.name} (${inp.type}) is not a valid connection`);
      if (inp.link !== l.id) problems.push(`link ${l.id}: target input ${t.type}.${inp.name} points at link ${inp.link}`);
      if (!(out.links || []).includes(l.id)) problems.push(`link ${l.id}: source output ${o.type}.${out.name} does not list it`);
    }
    // round trip: the editor's own serialization against the file
    const ser = g.serialize();
    const byId = Object.fromEntries(ser.nodes.map(n => [n.id, n]));
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b) ||
      (Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => x === b[i] || (typeof x === 'number' && typeof b[i] === 'number' && Math.abs(x - b[i]) < 1e-9)));
    const linkKey = (nodes, links) => links.map(l => {
      const target = nodes.find(n => n.id === l[3]);
      return `${l[1]}:${l[2]}->${l[3]}.${target?.inputs?.[l[4]]?.name}:${l[5]}`;
    }).sort();
    const roundTrip = [];
    if (ser.nodes.length !== wf.nodes.length) roundTrip.push(`node count ${wf.nodes.length} -> ${ser.nodes.length}`);
    for (const n of wf.nodes) {
      const m = byId[n.id];
      if (!m) { roundTrip.push(`node ${n.id} ${n.type} vanished`); continue; }
      if (m.type !== n.type) roundTrip.push(`node ${n.id}: type ${n.type} -> ${m.type}`);
      if (!same(n.widgets_values || [], m.widgets_values || [])) roundTrip.push(`node ${n.id} ${n.type}: widgets_values ${JSON.stringify(n.widgets_values)} -> ${JSON.stringify(m.widgets_values)}`);
    }
    const before = linkKey(wf.nodes, wf.links), after = linkKey(ser.nodes, ser.links);
    if (JSON.stringify(before) !== JSON.stringify(after)) roundTrip.push(`links differ: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    const small = [];
    for (const n of g.nodes) {
      const min = n.computeSize ? n.computeSize() : null;
      if (min && (n.size[0] + 1 < min[0] || n.size[1] + 1 < min[1])) small.push(`${n.id} ${n.type}: size ${n.size.map(Math.round)} < minimum ${min.map(Math.round)}`);
    }
    const prompt = await app.graphToPrompt();
    return { nodes: g.nodes.length, links: linkList.length, unknown, problems, roundTrip, small, prompt: prompt.output };
  }, wf);
}

async function screenshot(file) {
  await page.evaluate(() => {
    const { app } = window;
    const nodes = app.graph.nodes;
    const title = window.LiteGraph.NODE_TITLE_HEIGHT || 30;
    const x0 = Math.min(...nodes.map(n => n.pos[0])), y0 = Math.min(...nodes.map(n => n.pos[1] - title));
    const x1 = Math.max(...nodes.map(n => n.pos[0] + n.size[0])), y1 = Math.max(...nodes.map(n => n.pos[1] + n.size[1]));
    const canvas = app.canvas, el = canvas.canvas;
    const margin = 30, w = el.clientWidth, h = el.clientHeight;
    const scale = Math.min(1.0, (w - 2 * margin) / (x1 - x0), (h - 2 * margin) / (y1 - y0));
    canvas.ds.scale = scale;
    canvas.ds.offset = [(w / scale - (x1 - x0)) / 2 - x0, (h / scale - (y1 - y0)) / 2 - y0];
    canvas.deselectAll?.();
    canvas.setDirty(true, true);
    canvas.draw(true, true);
    const style = document.getElementById('llma-hide') || document.head.appendChild(Object.assign(document.createElement('style'), { id: 'llma-hide' }));
    style.textContent = '.minimap-main-container, .graph-canvas-menu, .p-toast, .selection-toolbox, .zoom-controls { visibility: hidden !important; }';
  });
  await page.waitForTimeout(800);
  await page.locator('#graph-canvas').screenshot({ path: file });
}

// ---------------------------------------------------------------- README figures and template thumbnails
// Figures: the graph at 100 % zoom (the editor's default), cut into panels of whole node columns at most
// PANEL_WIDTH graph units wide, so that the README's column (about 880 px) shows titles and widget values
// at about the size the editor draws them. Thumbnail: the node that makes the workflow's result, with the
// nodes it feeds where they fit, at a zoom that stays legible in the template browser's 256 px card.
const PANEL_WIDTH = 900, MARGIN = 16, THUMB_PX = 512, THUMB_MAX = 640;
const RESULT_TYPES = ['LLMAssistMetricsReport', 'LLMAssistEdit', 'LLMAssistRepair', 'LLMAssistEnhance',
  'LLMAssistGenerate', 'KSampler', 'LLMAssistSaveCaptions', 'LLMAssistConnectModelServer', 'LLMAssistCaptionImage'];

async function layout() {
  return page.evaluate(() => {
    const { app, LiteGraph } = window;
    const th = LiteGraph.NODE_TITLE_HEIGHT || 30;  // y0 also leaves room for the source badge above the title
    const linkList = app.graph.links instanceof Map ? [...app.graph.links.values()] : Object.values(app.graph.links || {});
    return app.graph.nodes.map(n => ({
      id: n.id, type: n.type, title: String(n.getTitle ? n.getTitle() : n.title),
      x0: n.pos[0], y0: n.pos[1] - th - 22, x1: n.pos[0] + n.size[0], y1: n.pos[1] + n.size[1],
      feeds: linkList.filter(l => l && l.origin_id === n.id).map(l => l.target_id),
    }));
  });
}

function bbox(nodes, margin = MARGIN) {
  const x0 = Math.min(...nodes.map(n => n.x0)) - margin, y0 = Math.min(...nodes.map(n => n.y0)) - margin;
  return [x0, y0, Math.max(...nodes.map(n => n.x1)) + margin - x0, Math.max(...nodes.map(n => n.y1)) + margin - y0];
}

function panels(nodes) {
  const columns = [...new Set(nodes.map(n => n.x0))].sort((a, b) => a - b).map(x => nodes.filter(n => n.x0 === x));
  const result = [];
  for (const column of columns) {
    const last = result[result.length - 1];
    if (last && bbox([...last, ...column])[2] <= PANEL_WIDTH) last.push(...column);
    else result.push([...column]);
  }
  return result;
}

function thumbRegion(nodes) {
  const focus = RESULT_TYPES.map(t => nodes.find(n => n.type === t)).find(Boolean) || nodes[0];
  const chosen = [focus];
  for (const id of focus.feeds) {
    const next = nodes.find(n => n.id === id);
    if (next && !chosen.includes(next) && bbox([...chosen, next])[2] <= THUMB_MAX && bbox([...chosen, next])[3] <= THUMB_MAX) chosen.push(next);
  }
  let [x, y, w, h] = bbox(chosen, 16);
  if (w > h) { y -= (w - h) / 2; h = w; } else h = w;  // square like the card; of a tall node its top part
  return { focus: `${focus.id} ${focus.title}`, nodes: chosen.map(n => n.title), rect: [x, y, w, h] };
}

async function shoot(rect, scale, file) {
  const clip = await page.evaluate(([rect, scale]) => {
    const canvas = window.app.canvas, el = canvas.canvas, pad = 60;
    canvas.ds.scale = scale;
    canvas.ds.offset = [pad / scale - rect[0], pad / scale - rect[1]];
    canvas.deselectAll?.();
    canvas.setDirty(true, true);
    canvas.draw(true, true);
    const r = el.getBoundingClientRect();
    return { x: r.left + pad, y: r.top + pad, width: Math.round(rect[2] * scale), height: Math.round(rect[3] * scale) };
  }, [rect, scale]);
  await page.waitForTimeout(1000);  // DOM widgets (text areas, markdown) follow the canvas on the next frames
  await page.screenshot({ path: file, clip });
}

async function figures(name) {
  await page.evaluate(() => {
    const style = document.getElementById('llma-hide') || document.head.appendChild(Object.assign(document.createElement('style'), { id: 'llma-hide' }));
    style.textContent = '.minimap-main-container, .graph-canvas-menu, .p-toast, .selection-toolbox, .zoom-controls, ' +
      '.side-tool-bar-container, .comfyui-menu, .actionbar, .comfyui-body-top, .comfyui-body-left, .workflow-tabs-container, ' +
      '.comfyui-queue-button, .splitter-overlay-root > .p-splitter-gutter { visibility: hidden !important; }';
  });
  const nodes = await layout();
  const result = { panels: [], thumbnail: null };
  for (const [i, group] of panels(nodes).entries()) {
    const rect = bbox(group), file = path.join(outDir, `${name}-panel-${i + 1}.png`);
    await shoot(rect, 1.0, file);
    result.panels.push({ file, rect, titles: group.map(n => n.title) });
  }
  const thumb = thumbRegion(nodes), file = path.join(outDir, `${name}-thumbnail.png`);
  await shoot(thumb.rect, THUMB_PX / thumb.rect[2], file);
  result.thumbnail = { file, ...thumb };
  return result;
}

async function check(name, wf, shot) {
  events = [];
  await page.evaluate(async ([wf, name]) => { await window.app.loadGraphData(wf, true, true, name); }, [wf, name]);
  await page.waitForTimeout(1500);
  const seen = await dialogs();
  const toasts = await page.evaluate(() => [...document.querySelectorAll('.p-toast-message-error, .p-toast-message-warn')].map(t => t.innerText.trim()));
  const info = await inspect(wf);
  await closeDialogs();
  if (shot) await screenshot(path.join(outDir, `${name}.png`));
  const offline = e => /api\.comfy\.org/.test(`${e.text} ${e.at || ''}`) || (e.kind === 'requestfailed' && /\/api\/settings\//.test(e.text));
  const errors = events.filter(e => !offline(e));
  const result = { dialogs: seen, toasts, errors, ignored: events.filter(offline), ...info };
  result.ok = !seen.length && !toasts.length && !errors.length && !info.unknown.length && !info.problems.length && !info.roundTrip.length;
  return result;
}

for (const name of names) {
  const wf = JSON.parse(fs.readFileSync(path.join(wfDir, `${name}.json`), 'utf8'));
  const result = await check(name, wf, true);
  fs.writeFileSync(path.join(outDir, `${name}.prompt.json`), JSON.stringify(result.prompt, null, 2));
  delete result.prompt;
  if (args.figures === 'true') result.figures = await figures(name);
  report.workflows[name] = result;
  if (!result.ok) report.ok = false;
  console.log(`${result.ok ? 'ok  ' : 'FAIL'} ${name}: ${result.nodes} nodes, ${result.links} links` +
    (result.ok ? '' : ` ${JSON.stringify({ dialogs: result.dialogs, toasts: result.toasts, errors: result.errors, unknown: result.unknown, problems: result.problems, roundTrip: result.roundTrip })}`) +
    (result.small.length ? ` (below minimum size: ${result.small.join('; ')})` : ''));
}

// ---------------------------------------------------------------- self-test: a missing node must be caught
const first = JSON.parse(fs.readFileSync(path.join(wfDir, `${names[0]}.json`), 'utf8'));
const broken = JSON.parse(JSON.stringify(first));
const victim = broken.nodes.find(n => n.type.startsWith('LLMAssist'));
victim.type = 'LLMAssistNoSuchNode';
const self = await check('selftest-missing-node', broken, false);
delete self.prompt;
report.selftest = { replaced: `${victim.id} -> LLMAssistNoSuchNode`, detected: !self.ok, dialogs: self.dialogs, unknown: self.unknown };
if (self.ok) report.ok = false;
console.log(`${self.ok ? 'FAIL' : 'ok  '} self-test: an unknown node type is ${self.ok ? 'NOT ' : ''}detected (dialog: ${self.dialogs.length ? 'yes' : 'no'}, unknown: ${self.unknown.join(', ')})`);
console.log(`templates: ${listed.length} listed under ${pack}; missing ${JSON.stringify(report.templates.missing)}`);

fs.writeFileSync(path.join(outDir, 'report.json'), JSON.stringify(report, null, 2));
await browser.close();
process.exit(report.ok ? 0 : 1);
