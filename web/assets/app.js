// locksim visualizer: vanilla JS, no build step. It keeps every frame it
// receives so the scrub slider can re-render the whole state at any past
// frame; ops and faults are upserted by id.
'use strict';

const NS = 'http://www.w3.org/2000/svg';
const MAX_FRAMES = 20000;

const S = {
  frames: [],          // frames without ops/faults, oldest first
  ops: new Map(),      // id -> latest version of the op
  faults: new Map(),   // id -> latest version of the fault
  lastSeq: 0,
  idx: -1,             // -1: live, else index into frames
  token: new URLSearchParams(location.search).get('token') || '',
  info: { controlRequired: false, controllable: true, live: true },
  nodeKey: '',         // names in the nodes table, to rebuild it only when they change
  scenarios: [],
  ws: null,
  retry: 500,
};

const $ = (sel) => document.querySelector(sel);

function svg(tag, attrs, parent, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

function html(tag, attrs, parent, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else e.setAttribute(k, String(v));
  }
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

const secs = (ns) => (ns / 1e9).toFixed(1) + ' s';

// ---------------------------------------------------------------- frames

function apply(f) {
  for (const o of f.ops || []) S.ops.set(o.id, o);
  for (const x of f.faults || []) S.faults.set(x.id, x);
  if (f.seq && f.seq <= S.lastSeq && S.frames.length) return false; // already have it
  const copy = Object.assign({}, f);
  delete copy.ops;
  delete copy.faults;
  S.frames.push(copy);
  if (S.frames.length > MAX_FRAMES) {
    S.frames.splice(0, S.frames.length - MAX_FRAMES);
    if (S.idx >= 0) S.idx = Math.max(0, S.idx - 1);
  }
  if (f.seq) S.lastSeq = f.seq;
  return true;
}

function current() {
  if (!S.frames.length) return null;
  return S.idx < 0 ? S.frames[S.frames.length - 1] : S.frames[Math.min(S.idx, S.frames.length - 1)];
}

function render() {
  const f = current();
  renderScrub();
  if (!f) return;
  renderHeader(f);
  renderTopology(f);
  renderNodes(f);
  renderLocks(f);
  renderResources(f);
  renderClients(f);
  renderScenario(f);
  renderTimeline(f);
}

// ---------------------------------------------------------------- header

function renderHeader(f) {
  const pace = $('#pace');
  pace.textContent = 'pace: ' + (f.pace || '?');
  pace.dataset.pace = f.pace || '';
  const v = f.verdict || {};
  const el = $('#verdict');
  const worst = [v.lock, v.resource].includes('violated') ? 'bad'
    : (v.lock === 'linearizable' && (v.resource === 'linearizable' || !v.resource)) ? 'ok' : 'pending';
  el.className = 'badge ' + worst;
  el.dataset.lock = v.lock || '';
  el.dataset.resource = v.resource || '';
  el.textContent = `lock: ${v.lock || '…'} · resource: ${v.resource || '…'} · ${v.checkedOps || 0} ops`;
  el.title = `checked at ${secs(v.at || 0)}; open porcupine's view`;
  el.href = v.historyURL || '/history.html';
  const fencing = $('#fencing');
  if (document.activeElement !== fencing) fencing.checked = !!f.fencing;
  document.body.dataset.fencing = String(!!f.fencing);
}

// ---------------------------------------------------------------- topology

const TIER = { client: 0, balancer: 1, lockserver: 2, etcd: 3 };
function tier(name) {
  const m = /^([a-z]+)/.exec(name || '');
  return m && m[1] in TIER ? TIER[m[1]] : 4;
}
// linkKey names a link with the lower tier first, names sorted within a tier.
function linkKey(a, b) {
  const ta = tier(a), tb = tier(b);
  if (ta > tb || (ta === tb && a.localeCompare(b, undefined, { numeric: true }) > 0)) [a, b] = [b, a];
  return a + '->' + b;
}

function spread(n, top, bottom) {
  if (n <= 0) return [];
  if (n === 1) return [(top + bottom) / 2];
  const step = (bottom - top) / (n - 1);
  return Array.from({ length: n }, (_, i) => top + i * step);
}

function layout(f) {
  const pos = {};
  const clients = f.clients || [];
  const ch = Math.min(48, Math.max(26, 400 / Math.max(1, clients.length) - 8));
  spread(clients.length, 20 + ch / 2, 430 - ch / 2).forEach((y, i) => {
    pos[clients[i].name] = { x: 85, y, w: 150, h: ch };
  });
  if (f.balancer && f.balancer.name) pos[f.balancer.name] = { x: 290, y: 225, w: 130, h: 62 };
  // A group of balancers: the virtual address the clients use, the balancers behind it.
  const group = f.balancers || [];
  if (group.length) {
    pos.vip = { x: 228, y: 225, w: 86, h: 50 };
    spread(group.length, 72, 378).forEach((y, i) => { pos[group[i].name] = { x: 334, y, w: 122, h: 64 }; });
  }
  const ls = f.lockServers || [];
  spread(ls.length, 70, 380).forEach((y, i) => { pos[ls[i].name] = { x: 480, y, w: 150, h: 58 }; });
  const ms = f.members || [];
  ms.forEach((m, i) => {
    const a = (180 + (360 * i) / Math.max(1, ms.length)) * Math.PI / 180;
    pos[m.name] = { x: 840 + 140 * Math.cos(a), y: 235 + 140 * Math.sin(a), w: 160, h: 78 };
  });
  return pos;
}

function linkStates(f) {
  const st = {};
  for (const l of f.links || []) {
    const k = linkKey(l.from, l.to);
    const s = st[k] || (st[k] = { dirs: 0, cut: false, delay: 0 });
    if (l.cut) { s.cut = true; s.dirs++; }
    s.delay = Math.max(s.delay, l.delayMs || 0);
  }
  return st;
}

function renderTopology(f) {
  const pos = layout(f);
  const st = linkStates(f);
  const links = $('#links');
  links.replaceChildren();
  const drawn = new Set();
  const line = (a, b, cls) => {
    const k = linkKey(a, b);
    if (drawn.has(k) || !pos[a] || !pos[b]) return;
    drawn.add(k);
    const s = st[k] || { cut: false, delay: 0, dirs: 0 };
    const p = pos[a], q = pos[b];
    const c = ['link', cls];
    if (s.cut) c.push('cut'); else if (s.delay) c.push('delayed');
    svg('line', {
      class: c.join(' '), x1: p.x, y1: p.y, x2: q.x, y2: q.y,
      'data-link': k, 'data-cut': s.cut, 'data-oneway': s.cut && s.dirs === 1, 'data-delay': s.delay,
    }, links);
    const mx = (p.x + q.x) / 2, my = (p.y + q.y) / 2;
    if (s.cut) svg('text', { class: 'linklabel', x: mx + 4, y: my - 4 }, links, s.dirs === 1 ? '✂ one-way' : '✂ cut');
    else if (s.delay) svg('text', { class: 'linklabel delay', x: mx + 4, y: my - 4 }, links, '+' + s.delay + ' ms');
  };
  const ms = f.members || [], ls = f.lockServers || [];
  for (let i = 0; i < ms.length; i++) for (let j = i + 1; j < ms.length; j++) line(ms[i].name, ms[j].name, 'raft');
  const group = f.balancers || [];
  for (const c of f.clients || []) {
    if (group.length) line(c.name, 'vip', 'client');
    else if (f.balancer) line(c.name, f.balancer.name, 'client');
  }
  for (const l of ls) if (f.balancer) line(f.balancer.name, l.name, 'lb');
  for (let i = 0; i < group.length; i++) {
    line('vip', group[i].name, 'vip' + (group[i].ownsVip ? ' owner' : ''));
    for (let j = i + 1; j < group.length; j++) line(group[i].name, group[j].name, 'vrrp');
    for (const l of ls) line(group[i].name, l.name, 'lb');
  }
  for (const l of ls) for (const m of ms) line(l.name, m.name, 'etcd');
  for (const l of f.links || []) line(l.from, l.to, 'other');

  // Clients
  const cg = $('#clients-g');
  cg.replaceChildren();
  for (const c of f.clients || []) {
    const p = pos[c.name];
    const cls = ['node', 'client', c.phase || 'idle'];
    if (c.paused) cls.push('paused');
    const g = nodeBox(cg, p, cls, { 'data-client': c.name, 'data-phase': c.phase || '', 'data-paused': !!c.paused, 'data-believes': !!c.believes });
    const big = p.h >= 40;
    svg('text', { class: 'name', x: -p.w / 2 + 8, y: big ? -4 : 4 }, g, c.name);
    const tok = c.fencingToken ? ' #' + c.fencingToken : '';
    svg('text', { class: 'small', x: big ? -p.w / 2 + 8 : 0, y: big ? 13 : 4 }, g, (c.paused ? 'PAUSED' : (c.phase || 'idle')) + tok + (c.believes ? ' · believes' : ''));
  }

  // Balancer
  const bg = $('#balancer-g');
  bg.replaceChildren();
  if (f.balancer && f.balancer.name) {
    const b = f.balancer, p = pos[b.name];
    const cls = ['node', 'balancer'];
    if (!b.up) cls.push('down');
    if (b.paused) cls.push('paused');
    const g = nodeBox(bg, p, cls, { 'data-node': b.name, 'data-up': !!b.up });
    svg('text', { class: 'name', x: -p.w / 2 + 8, y: -12 }, g, b.name);
    svg('text', { class: 'small', x: -p.w / 2 + 8, y: 5 }, g, `in flight ${b.inFlight || 0}`);
    svg('text', { class: 'small', x: -p.w / 2 + 8, y: 20 }, g, `${b.requests || 0} requests`);
    if (!b.up) crossOut(g, p);
  }
  renderGroup(f, pos, bg);

  // Lock servers
  const lg = $('#lockservers');
  lg.replaceChildren();
  for (const l of ls) {
    const p = pos[l.name];
    const cls = ['node', 'lockserver'];
    if (!l.up) cls.push('down');
    if (l.paused) cls.push('paused');
    const g = nodeBox(lg, p, cls, { 'data-lockserver': l.name, 'data-up': !!l.up, 'data-paused': !!l.paused });
    svg('text', { class: 'name', x: -p.w / 2 + 8, y: -10 }, g, l.name);
    svg('text', { class: 'small', x: -p.w / 2 + 8, y: 6 }, g, `in flight ${l.inFlight || 0} · ${l.requests || 0} req`);
    if (!l.up) svg('text', { class: 'flag', x: -p.w / 2 + 8, y: 21 }, g, 'CRASHED');
    else if (l.paused) svg('text', { class: 'flag', x: -p.w / 2 + 8, y: 21 }, g, 'PAUSED');
    if (!l.up) crossOut(g, p);
  }

  // etcd members
  const mg = $('#members');
  mg.replaceChildren();
  for (const m of ms) {
    const p = pos[m.name];
    const cls = ['node', 'member'];
    if (m.leader) cls.push('leader');
    if (!m.up) cls.push('down');
    if (m.partitioned) cls.push('partitioned');
    const g = nodeBox(mg, p, cls, {
      'data-member': m.name, 'data-leader': !!m.leader, 'data-up': !!m.up,
      'data-partitioned': !!m.partitioned, 'data-term': m.term || 0, 'data-role': m.role || '',
    });
    if (m.leader) {
      svg('path', { class: 'crown', d: 'M-16,-50 L-16,-62 L-8,-55 L0,-66 L8,-55 L16,-62 L16,-50 Z', 'data-crown': m.name }, g);
    }
    svg('text', { class: 'name', x: -p.w / 2 + 8, y: -20 }, g, m.name);
    svg('text', { class: 'small', x: p.w / 2 - 8, y: -20, 'text-anchor': 'end' }, g, m.up ? (m.role || (m.leader ? 'leader' : 'follower')) : 'down');
    svg('text', { class: 'small', x: -p.w / 2 + 8, y: -3 }, g, `term ${m.term || 0}`);
    svg('text', { class: 'small', x: -p.w / 2 + 8, y: 13 }, g, `commit ${m.commit || 0} · applied ${m.applied || 0}`);
    if (!m.up) svg('text', { class: 'flag', x: -p.w / 2 + 8, y: 30 }, g, 'CRASHED');
    else if (m.partitioned) svg('text', { class: 'flag', x: -p.w / 2 + 8, y: 30 }, g, 'PARTITIONED');
    if (!m.up) crossOut(g, p);
  }
}

// renderGroup draws a group of balancers and the virtual address in front
// of them: who is master (a crown; two crowns in a split brain), who owns
// the address, priorities and adverts.
function renderGroup(f, pos, bg) {
  const group = f.balancers || [];
  if (!group.length) return;
  const vip = f.vip || {};
  const vp = pos.vip;
  const vg = nodeBox(bg, vp, ['node', 'vip'], { 'data-vip': vip.owner || '', 'data-moves': vip.moves || 0 });
  svg('text', { class: 'name', x: -vp.w / 2 + 8, y: -8 }, vg, 'virtual IP');
  svg('text', { class: 'small', x: -vp.w / 2 + 8, y: 8 }, vg, vip.owner ? '→ ' + vip.owner : '→ nobody');
  svg('text', { class: 'small', x: -vp.w / 2 + 8, y: 21 }, vg, `${vip.moves || 0} moves`);
  const masters = group.filter((b) => b.up && b.state === 'master').length;
  for (const b of group) {
    const p = pos[b.name];
    const cls = ['node', 'balancer', b.state || 'down'];
    if (!b.up) cls.push('down');
    if (b.paused) cls.push('paused');
    if (b.ownsVip) cls.push('owner');
    const g = nodeBox(bg, p, cls, {
      'data-node': b.name, 'data-up': !!b.up, 'data-state': b.state || '', 'data-owner': !!b.ownsVip, 'data-paused': !!b.paused,
    });
    const t = svg('title', {}, g, `${b.name}: ${b.state || 'down'} since ${secs(b.since || 0)}${b.reason ? ' — ' + b.reason : ''}`);
    t.dataset.reason = b.reason || '';
    if (b.up && b.state === 'master') {
      svg('path', { class: 'crown' + (masters > 1 ? ' split' : ''), d: 'M-14,-40 L-14,-50 L-7,-44 L0,-53 L7,-44 L14,-50 L14,-40 Z', 'data-crown': b.name }, g);
    }
    svg('text', { class: 'name', x: -p.w / 2 + 7, y: -16 }, g, b.name);
    svg('text', { class: 'small', x: -p.w / 2 + 7, y: -2 }, g, `${b.up ? (b.state || '') : 'down'} · prio ${b.priority}`);
    svg('text', { class: 'small', x: -p.w / 2 + 7, y: 12 }, g, `${b.advertsSent || 0} adverts · ${b.requests || 0} req`);
    if (!b.up) svg('text', { class: 'flag', x: -p.w / 2 + 7, y: 26 }, g, 'CRASHED');
    else if (b.paused) svg('text', { class: 'flag', x: -p.w / 2 + 7, y: 26 }, g, 'PAUSED');
    else if (b.ownsVip) svg('text', { class: 'flag owner', x: -p.w / 2 + 7, y: 26 }, g, 'OWNS THE VIP');
    if (!b.up) crossOut(g, p);
  }
}

function nodeBox(parent, p, cls, data) {
  const g = svg('g', Object.assign({ class: cls.join(' '), transform: `translate(${p.x},${p.y})` }, data), parent);
  svg('rect', { class: 'box', x: -p.w / 2, y: -p.h / 2, width: p.w, height: p.h, rx: 8 }, g);
  return g;
}

function crossOut(g, p) {
  svg('line', { class: 'x', x1: p.w / 2 - 22, y1: -p.h / 2 + 6, x2: p.w / 2 - 8, y2: -p.h / 2 + 20 }, g);
  svg('line', { class: 'x', x1: p.w / 2 - 8, y1: -p.h / 2 + 6, x2: p.w / 2 - 22, y2: -p.h / 2 + 20 }, g);
}

// ---------------------------------------------------------------- controls

function renderNodes(f) {
  const nodes = [];
  for (const m of f.members || []) nodes.push({ name: m.name, state: !m.up ? 'down' : m.partitioned ? 'part' : '', text: !m.up ? 'crashed' : m.partitioned ? 'partitioned' : (m.role || (m.leader ? 'leader' : 'follower')), up: m.up });
  for (const l of f.lockServers || []) nodes.push({ name: l.name, state: !l.up ? 'down' : l.paused ? 'paused' : '', text: !l.up ? 'crashed' : l.paused ? 'paused' : 'up', up: l.up, pausable: true, paused: !!l.paused });
  for (const b of f.balancers || []) {
    nodes.push({
      name: b.name, up: b.up, paused: b.paused, pausable: true,
      state: !b.up ? 'down' : b.paused ? 'paused' : b.state === 'master' ? 'master' : '',
      text: !b.up ? 'crashed' : (b.paused ? 'paused, ' : '') + (b.state || '') + (b.ownsVip ? ' · VIP' : ''),
    });
  }
  const key = nodes.map((n) => n.name).join(',');
  const body = $('#nodes tbody');
  if (key !== S.nodeKey) {
    S.nodeKey = key;
    body.replaceChildren();
    for (const n of nodes) {
      const tr = html('tr', { 'data-node': n.name }, body);
      html('td', {}, tr, n.name);
      html('td', { class: 'state' }, tr);
      html('button', { class: 'danger', 'data-action': 'crash', 'data-target': n.name }, html('td', {}, tr), 'crash');
      html('button', { 'data-action': 'restart', 'data-target': n.name }, html('td', {}, tr), 'restart');
      const pc = html('td', {}, tr);
      if (n.pausable) html('button', { class: 'pause', 'data-action': 'pause', 'data-target': n.name }, pc, 'pause');
      html('input', { type: 'checkbox', 'data-group': 'a', 'data-node': n.name, 'aria-label': n.name + ' in group A' }, html('td', {}, tr));
      html('input', { type: 'checkbox', 'data-group': 'b', 'data-node': n.name, 'aria-label': n.name + ' in group B' }, html('td', {}, tr));
    }
  }
  for (const n of nodes) {
    const tr = body.querySelector(`tr[data-node="${CSS.escape(n.name)}"]`);
    if (!tr) continue;
    const st = tr.querySelector('.state');
    st.className = 'state ' + n.state;
    st.textContent = n.text;
    tr.querySelector('[data-action=crash]').dataset.enabled = String(!!n.up);
    tr.querySelector('[data-action=restart]').dataset.enabled = String(!n.up);
    const pb = tr.querySelector('button.pause');
    if (pb) {
      const action = n.paused ? 'resume' : 'pause';
      if (pb.dataset.action !== action) {
        pb.dataset.action = action;
        pb.textContent = action;
      }
      pb.dataset.enabled = String(!!n.up);
    }
  }
  applyReadOnly();
}

function renderLocks(f) {
  const body = $('#locks tbody');
  body.replaceChildren();
  for (const l of f.locks || []) {
    const believers = l.believers || [];
    const holders = l.held ? [l.owner] : [];
    const differ = believers.length !== holders.length || believers.some((b) => !holders.includes(b));
    const tr = html('tr', { 'data-resource': l.resource, 'data-differ': differ, 'data-owner': l.held ? l.owner : '' }, body);
    if (differ) tr.className = 'differ';
    html('td', {}, tr, l.resource);
    const owner = html('td', { class: 'owner' }, tr);
    if (l.held) html('span', { class: 'chip holder' }, owner, l.owner); else html('span', { class: 'muted' }, owner, 'free');
    html('td', {}, tr, l.held ? '#' + l.fencingToken : '–');
    const bel = html('td', { class: 'believers' }, tr);
    if (!believers.length) html('span', { class: 'muted' }, bel, 'nobody');
    for (const b of believers) html('span', { class: 'chip ' + (holders.includes(b) ? 'holder' : 'stale'), title: holders.includes(b) ? 'holds it in etcd' : 'believes it holds the lock, but etcd says otherwise' }, bel, b);
    const ttl = html('td', {}, tr);
    if (l.held && l.ttlMs > 0) {
      const frac = Math.max(0, Math.min(1, l.expiresInMs / l.ttlMs));
      const bar = html('span', { class: 'ttl' + (frac < 0.3 ? ' low' : '') }, ttl);
      html('i', {}, bar).style.width = (frac * 100).toFixed(1) + '%';
      html('span', {}, ttl, (l.expiresInMs / 1000).toFixed(1) + ' s');
    } else html('span', { class: 'muted' }, ttl, '–');
    html('td', {}, tr, String(l.waiters || 0));
  }
  if (!(f.locks || []).length) html('td', { colspan: 6, class: 'muted' }, html('tr', {}, body), 'no locks yet');
}

function renderResources(f) {
  const body = $('#resources tbody');
  body.replaceChildren();
  for (const r of f.resources || []) {
    const tr = html('tr', { 'data-resource': r.name }, body);
    html('td', {}, tr, r.name);
    html('td', { class: 'value' }, tr, String(r.value));
    html('td', {}, tr, '#' + r.highestToken);
    html('td', { class: r.rejected ? 'state down' : '' }, tr, String(r.rejected || 0));
  }
}

function renderClients(f) {
  // Rows are kept and updated in place, so that a button is never replaced
  // between the press and the release of a click.
  const body = $('#clients tbody');
  const clients = f.clients || [];
  const key = clients.map((c) => c.name).join(',');
  if (body.dataset.key !== key) {
    body.dataset.key = key;
    body.replaceChildren();
    for (const c of clients) {
      const tr = html('tr', { 'data-client': c.name }, body);
      html('td', {}, tr, c.name);
      for (let i = 0; i < 6; i++) html('td', {}, tr);
      html('button', { 'data-target': c.name }, html('td', {}, tr));
    }
  }
  clients.forEach((c, i) => {
    const tds = body.rows[i].cells;
    tds[1].className = c.paused ? 'state paused' : '';
    tds[1].textContent = c.paused ? 'paused' : (c.phase || 'idle');
    tds[2].textContent = c.resource || '–';
    tds[3].textContent = c.fencingToken ? '#' + c.fencingToken : '–';
    tds[4].textContent = c.believes ? 'yes' : 'no';
    tds[5].textContent = (c.skewMs || 0) + ' ms';
    tds[6].textContent = `${c.ok || 0} / ${c.fail || 0} / ${c.unknown || 0}`;
    const b = tds[7].firstChild;
    const action = c.paused ? 'resume' : 'pause';
    if (b.dataset.action !== action) {
      b.dataset.action = action;
      b.textContent = action;
    }
  });
  applyReadOnly();
}

function renderScenario(f) {
  const sc = f.scenario;
  const box = $('#narration');
  box.replaceChildren();
  box.classList.toggle('waiting', !!(sc && sc.waitingToContinue));
  box.dataset.step = sc ? String(sc.step) : '';
  box.dataset.running = String(!!(sc && sc.running));
  if (!sc) {
    html('span', { class: 'muted' }, box, 'No scenario running.');
    $('#step').textContent = '';
  } else {
    html('b', {}, box, `${sc.name}${sc.running ? '' : ' (finished)'}`);
    html('span', { class: 'note' }, box, sc.note || sc.description || '');
    $('#step').textContent = `step ${sc.step}/${sc.steps}${sc.waitingToContinue ? ' — waiting' : ''}`;
  }
  $('#continue').dataset.enabled = String(!!(sc && sc.waitingToContinue));
  applyReadOnly();
}

// applyReadOnly disables every control when the page may not control the
// sandbox, and otherwise those whose data-enabled says so.
function applyReadOnly() {
  const ro = !S.info.controllable || (S.info.controlRequired && !S.token);
  document.body.classList.toggle('readonly', ro);
  $('#readonly').hidden = !ro;
  $('#token-form').hidden = !S.info.controlRequired;
  for (const e of document.querySelectorAll('[data-action], #nodes input, #scenario-select')) {
    e.disabled = ro || e.dataset.enabled === 'false';
  }
}

function status(text, err) {
  const s = $('#status');
  s.textContent = text;
  s.className = 'status' + (err ? ' err' : '');
}

async function control(cmd) {
  const headers = { 'Content-Type': 'application/json' };
  if (S.token) headers.Authorization = 'Bearer ' + S.token;
  status(`${cmd.action} ${cmd.target || cmd.scenario || ''}…`);
  if (cmd.yaml) status('run-scenario from file…');
  try {
    const r = await fetch('/api/control', { method: 'POST', headers, body: JSON.stringify(cmd) });
    const res = await r.json().catch(() => ({}));
    if (r.status === 403) status('forbidden: the control token is missing or wrong', true);
    else if (!r.ok) status(res.error || r.statusText, true);
    else status(`${cmd.action} ${cmd.target || cmd.scenario || ''}: done`);
  } catch (e) {
    status(String(e), true);
  }
}

function onClick(ev) {
  const b = ev.target.closest('button[data-action]');
  if (!b || b.disabled) return;
  const a = b.dataset.action;
  if (a === 'partition') {
    const pick = (g) => [...document.querySelectorAll(`#nodes input[data-group=${g}]:checked`)].map((e) => e.dataset.node);
    const A = pick('a'), B = pick('b');
    if (!A.length || !B.length) { status('tick at least one node in A and one in B', true); return; }
    control({ action: 'partition', groups: [A, B] });
    for (const e of document.querySelectorAll('#nodes input[type=checkbox]')) e.checked = false;
  } else if (a === 'run-scenario') {
    const name = $('#scenario-select').value;
    if (!name) { status('no scenario selected', true); return; }
    control({ action: 'run-scenario', scenario: name });
  } else if (a === 'run-file') {
    $('#scenario-file').click();
  } else if (a === 'heal' || a === 'continue') {
    control({ action: a });
  } else {
    control({ action: a, target: b.dataset.target });
  }
}

function onChange(ev) {
  const e = ev.target;
  if (e.matches('#nodes input[data-group]') && e.checked) {
    // A node is in at most one group.
    const other = e.dataset.group === 'a' ? 'b' : 'a';
    const o = document.querySelector(`#nodes input[data-group=${other}][data-node="${CSS.escape(e.dataset.node)}"]`);
    if (o) o.checked = false;
  }
  if (e.id === 'fencing' || e.id === 'step-mode') control({ action: e.dataset.action, value: e.checked });
  if (e.id === 'window') renderTimeline(current());
  if (e.id === 'scenario-file' && e.files.length) {
    e.files[0].text().then((yaml) => control({ action: 'run-scenario', yaml }));
    e.value = '';
  }
}

// ---------------------------------------------------------------- timeline

function renderTimeline(f) {
  const tl = $('#timeline');
  if (!f) return;
  const T = f.t || 0;
  const clients = (f.clients || []).map((c) => c.name);
  const ops = [...S.ops.values()].filter((o) => o.call <= T);
  for (const o of ops) if (!clients.includes(o.client)) clients.push(o.client);
  const group = (f.balancers || []).map((b) => b.name);
  const W = Math.max(400, Math.round(tl.clientWidth || 1000)); // 1 unit = 1 px: text is not stretched
  const laneH = 20, top = 30, left = 90, right = W - 10;
  const lanes = clients.length + group.length;
  const H = top + Math.max(1, lanes) * laneH + 18;
  tl.setAttribute('viewBox', `0 0 ${W} ${H}`);
  tl.style.height = H + 'px';
  tl.replaceChildren();
  const win = Number($('#window').value) * 1e9;
  const visible = win || Math.max(1e9, T);
  const t0 = win ? Math.max(0, T - win) : 0;
  const x = (t) => left + ((Math.min(Math.max(t, t0), t0 + visible) - t0) / visible) * (right - left);
  clients.concat(group).forEach((c, i) => {
    const cls = 'lane' + (i % 2 ? ' alt' : '') + (i >= clients.length ? ' balancerlane' : '');
    svg('rect', { class: cls, x: left, y: top + i * laneH, width: right - left, height: laneH }, tl);
    svg('text', { class: 'lanelabel', x: 4, y: top + i * laneH + 14 }, tl, c);
  });
  renderGroupLanes(tl, group, top + clients.length * laneH, laneH, x, t0, T);
  // Time ticks.
  const stepNs = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600].map((s) => s * 1e9).find((s) => visible / s <= 10) || 1200e9;
  for (let t = Math.ceil(t0 / stepNs) * stepNs; t <= T; t += stepNs) {
    svg('line', { class: 'tick', x1: x(t), x2: x(t), y1: top - 4, y2: H - 16 }, tl);
    svg('text', { class: 'tick', x: x(t), y: H - 4, 'text-anchor': 'middle' }, tl, (t / 1e9).toFixed(0) + 's');
  }
  // Fault windows.
  let row = 0;
  for (const fl of [...S.faults.values()].sort((a, b) => a.start - b.start)) {
    if (fl.start > T) continue;
    const end = fl.end && fl.end <= T ? fl.end : T;
    if (end < t0) continue;
    const x1 = x(fl.start), x2 = Math.max(x(end), x1 + 2);
    const r = svg('rect', { class: 'faultwin', x: x1, y: top - 2, width: x2 - x1, height: lanes * laneH + 4, 'data-fault': fl.id }, tl);
    svg('title', {}, r, `${fl.fault} ${fl.target}${fl.note ? ': ' + fl.note : ''}${fl.error ? ' (error: ' + fl.error + ')' : ''}`);
    const label = `${fl.fault} ${fl.target}`;
    const anchorEnd = x1 > right - 7 * label.length;
    svg('text', { class: 'faultlabel', x: anchorEnd ? x2 - 2 : x1 + 2, y: 10 + (row++ % 2) * 11, 'text-anchor': anchorEnd ? 'end' : 'start' }, tl, label);
  }
  // Operations; those a violation's explanation names are outlined.
  const explained = new Set(((f.verdict || {}).explanations || []).flatMap((e) => e.ops || []));
  for (const o of ops) {
    const lane = clients.indexOf(o.client);
    if (lane < 0) continue;
    const done = o.return && o.return <= T;
    const end = done ? o.return : T;
    if (end < t0) continue;
    const outcome = done ? (o.outcome || 'ok') : (o.outcome === 'unknown' ? 'unknown' : 'pending');
    const x1 = x(o.call), x2 = Math.max(x(end), x1 + 2);
    const cls = 'op ' + outcome + (explained.has(o.id) ? ' explained' : '');
    const r = svg('rect', { class: cls, x: x1, y: top + lane * laneH + 3, width: x2 - x1, height: laneH - 6, rx: 2, 'data-op': o.id, 'data-outcome': outcome }, tl);
    svg('title', {}, r, `${o.client} ${o.op} ${o.resource}: ${outcome}${o.detail ? ' — ' + o.detail : ''} (${secs(o.call)}${done ? ' → ' + secs(o.return) : ''})`);
  }
  svg('line', { class: 'now', x1: x(T), x2: x(T), y1: top - 6, y2: H - 16 }, tl);
  renderExplanations(f);
}

// renderGroupLanes draws a lane per balancer of a group, from the frames
// up to T: its master periods (two at once: a split brain), when it owned
// the virtual IP, paused and crashed periods, a tick for every frame in
// which it sent adverts, and a marker at every takeover (its reason as a
// tooltip).
function renderGroupLanes(tl, group, top, laneH, x, t0, T) {
  if (!group.length) return;
  const frames = S.frames.filter((fr) => (fr.t || 0) <= T && (fr.balancers || []).length);
  group.forEach((name, k) => {
    const y = top + k * laneH;
    let seg = null, ownFrom = null, prevAdverts = null, prevState = null;
    const close = (t) => {
      if (seg && t >= t0) {
        const x1 = x(seg.from), x2 = Math.max(x(t), x1 + 1);
        svg('rect', { class: 'vrrp ' + seg.state, x: x1, y: y + 3, width: x2 - x1, height: laneH - 9, 'data-balancer': name, 'data-state': seg.state }, tl);
      }
      seg = null;
    };
    const closeOwn = (t) => {
      if (ownFrom !== null && t >= t0) {
        const x1 = x(ownFrom), x2 = Math.max(x(t), x1 + 1);
        svg('rect', { class: 'vipown', x: x1, y: y + laneH - 5, width: x2 - x1, height: 3, 'data-balancer': name }, tl);
      }
      ownFrom = null;
    };
    for (const fr of frames) {
      const b = fr.balancers.find((c) => c.name === name);
      if (!b) continue;
      const t = fr.t || 0;
      const state = !b.up ? 'down' : b.paused ? 'paused' : (b.state || 'down');
      if (!seg || seg.state !== state) {
        close(t);
        if (state !== 'backup') seg = { state, from: t };
      }
      if (state === 'master' && prevState !== null && prevState !== 'master' && t >= t0) {
        const m = svg('path', { class: 'takeover', d: `M${x(t)},${y + 1} l-4,-0 l4,7 l4,-7 z`, 'data-balancer': name }, tl);
        svg('title', {}, m, `${name} became master at ${secs(b.since || t)}: ${b.reason || ''}`);
      }
      if (b.ownsVip && ownFrom === null) ownFrom = t;
      if (!b.ownsVip) closeOwn(t);
      const adverts = b.up ? (b.advertsSent || 0) : null;
      if (adverts !== null && prevAdverts !== null && adverts > prevAdverts && t >= t0) {
        svg('line', { class: 'advert', x1: x(t), x2: x(t), y1: y + 4, y2: y + laneH - 6, 'data-balancer': name }, tl);
      }
      prevAdverts = adverts;
      prevState = state;
    }
    close(T);
    closeOwn(T);
  });
}

// renderExplanations says in words why the live checker found a violation.
function renderExplanations(f) {
  const box = $('#explanations');
  const es = (f.verdict || {}).explanations || [];
  box.hidden = es.length === 0;
  box.replaceChildren();
  for (const e of es) {
    const p = html('p', { 'data-kind': e.kind, 'data-model': e.model }, box);
    html('span', { class: 'kind' }, p, `${e.model} ${e.resource}: ${e.kind}. `);
    html('span', {}, p, e.text);
  }
}

// ---------------------------------------------------------------- scrub

function renderScrub() {
  const s = $('#scrub');
  const n = S.frames.length;
  s.max = String(Math.max(0, n - 1));
  const i = S.idx < 0 ? n - 1 : S.idx;
  if (document.activeElement !== s || S.idx < 0) s.value = String(Math.max(0, i));
  const f = current();
  const live = S.idx < 0 && S.info.live;
  const lb = $('#live');
  lb.classList.toggle('on', live);
  lb.textContent = live ? '● live' : '↦ live';
  $('#scrub-time').textContent = f ? `t = ${secs(f.t || 0)} · frame ${i + 1}/${n}${S.idx >= 0 ? ' (replay)' : ''}` : '';
  document.body.dataset.view = S.idx < 0 ? 'live' : 'replay';
}

// ---------------------------------------------------------------- wiring

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  S.ws = ws;
  const conn = $('#conn');
  ws.onopen = () => { S.retry = 500; conn.textContent = S.info.live ? 'connected' : 'replay'; conn.className = 'badge ' + (S.info.live ? 'on' : 'replay'); conn.dataset.state = 'open'; };
  let first = true;
  ws.onmessage = (ev) => {
    let f;
    try { f = JSON.parse(ev.data); } catch (e) { console.error(e); return; }
    if (first && f.seq && f.seq < S.lastSeq) {
      // A new sandbox behind the same address: start over.
      S.frames = []; S.ops.clear(); S.faults.clear(); S.lastSeq = 0; S.idx = -1;
    }
    first = false;
    apply(f);
    schedule();
  };
  ws.onclose = () => {
    conn.textContent = 'disconnected — retrying';
    conn.className = 'badge off';
    conn.dataset.state = 'closed';
    setTimeout(connect, S.retry);
    S.retry = Math.min(S.retry * 2, 5000);
  };
}

async function getJSON(path, fallback) {
  try {
    const r = await fetch(path, { cache: 'no-store' });
    if (!r.ok) return fallback;
    return await r.json();
  } catch (e) {
    return fallback;
  }
}

async function main() {
  document.addEventListener('click', onClick);
  document.addEventListener('change', onChange);
  $('#scrub').addEventListener('input', (e) => { S.idx = Number(e.target.value); if (S.idx >= S.frames.length - 1 && S.info.live) S.idx = -1; render(); });
  $('#live').addEventListener('click', () => { S.idx = -1; render(); });
  $('#token').value = S.token;
  $('#token-form').addEventListener('submit', (e) => { e.preventDefault(); S.token = $('#token').value.trim(); applyReadOnly(); status(S.token ? 'token set' : 'token cleared'); });
  document.addEventListener('keydown', (e) => {
    if (e.target.matches('input[type=text], input[type=password], select')) return;
    if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
      const n = S.frames.length;
      const i = S.idx < 0 ? n - 1 : S.idx;
      S.idx = Math.max(0, Math.min(n - 1, i + (e.key === 'ArrowLeft' ? -1 : 1)));
      render();
    }
  });
  S.info = await getJSON('/api/info', S.info);
  applyReadOnly();
  S.scenarios = await getJSON('/api/scenarios', []);
  const sel = $('#scenario-select');
  for (const sc of S.scenarios) html('option', { value: sc.name, title: sc.description || '' }, sel, sc.name);
  if (!S.scenarios.length) html('option', { value: '' }, sel, '(no scenarios)');
  const frames = await getJSON('/api/frames', []);
  for (const f of frames) apply(f);
  if (!S.info.live && frames.length) S.idx = frames.length - 1;
  render();
  connect();
}

main();
