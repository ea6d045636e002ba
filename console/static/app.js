// tollgate web console: a single-page client of the admin REST API.
// Every action is an API call with the operator's token
// (Authorization: Bearer), kept in sessionStorage; the token's scope,
// read from GET /v1/whoami, decides which controls are enabled. Pages
// refresh every POLL_MS without a reload; the events page reads the
// server-sent events of GET /v1/events.
'use strict';

const TOKEN_KEY = 'tollgate.token';
const POLL_MS = 2000;
const PAGE_SIZE = 25;
const SVGNS = 'http://www.w3.org/2000/svg';

const state = { me: null, page: null, timer: null };

// ---------------------------------------------------------------- DOM

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
}

function append(el, kids) {
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
}

function flash(msg, kind) {
  const el = document.getElementById('flash');
  if (!msg) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  el.hidden = false;
  el.className = kind || 'error';
  el.textContent = msg;
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, detail) {
    const msg = detail.field ? `${detail.field}: ${detail.message}` : detail.message;
    super(msg || `HTTP ${status}`);
    this.status = status;
    this.code = detail.code;
    this.field = detail.field || '';
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

async function api(method, path, body, opts = {}) {
  const headers = { Authorization: 'Bearer ' + (opts.token || token()) };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = opts.type || 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  if (!resp.ok) {
    const detail = (data && data.error) || { message: text || resp.statusText };
    if (resp.status === 401 && !opts.login) {
      logout('The API refused the token (' + detail.message + '): sign in again.');
    }
    throw new ApiError(resp.status, detail);
  }
  return data;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- scopes

function can(scope) {
  return !!state.me && state.me.grants.includes(scope);
}

const NEEDS = {
  admin: 'admin',
  settings: 'settings or admin',
  billing: 'billing or admin',
  read: 'any',
};

// gate disables el unless the token has scope; data-need names it.
function gate(el, scope) {
  el.dataset.need = scope;
  if (!can(scope)) {
    el.disabled = true;
    el.title = `needs a token of scope ${NEEDS[scope]} (this one is ${state.me ? state.me.scope : 'unknown'})`;
  }
  return el;
}

// ---------------------------------------------------------------- format

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace(/:00Z$/, 'Z');
}

function fmtNum(v) {
  if (v === null || v === undefined) return '';
  const n = Number(v);
  if (!isFinite(n)) return String(v);
  return Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 3 : 2).replace(/\.?0+$/, '');
}

function fmtLimit(v, kind) {
  if (v === null || v === undefined) return kind === 'burst' ? 'default (the rate, at least 1)' : '';
  if (kind === 'bool') return v ? 'on' : 'off';
  if (kind === 'pct') return v + ' %';
  if (Number(v) === -1) return 'unlimited';
  if (Number(v) === 0) return kind === 'prov' ? 'none allowed' : 'blocked';
  return fmtNum(v);
}

function unitOf(c) {
  return c.unit === 'calls' ? 'calls' : c.unit === 'minutes' ? 'min' : '';
}

const CAP_LABEL = {
  max_parallel_calls: 'Parallel calls',
  max_monthly_minutes: 'Minutes',
  monthly_spend_limit: 'Spend',
};

// bar is a usage bar: coloured at the alert threshold and at the cap.
function bar(c, threshold) {
  const pct = c.percent;
  const level = pct === null || pct === undefined ? 'unlimited' : pct >= 100 ? 'cap' : pct >= threshold ? 'warn' : 'ok';
  const fill = h('span', { class: 'fill' });
  fill.style.width = Math.min(100, Math.max(0, pct || 0)) + '%';
  const used = `${fmtNum(c.used)}${unitOf(c) ? ' ' + unitOf(c) : ''}`;
  const label = level === 'unlimited'
    ? `${used} · unlimited`
    : `${used} / ${fmtLimit(c.limit)} · ${pct.toFixed(1)} %`;
  return h('div', {
    class: 'bar ' + level,
    dataset: { cap: c.cap, level, percent: pct === null || pct === undefined ? '' : pct.toFixed(3), used: String(c.used) },
  }, h('span', { class: 'track' }, fill), h('span', { class: 'label' }, label));
}

function statusBadge(st) {
  if (!st.suspended) return h('span', { class: 'badge active', dataset: { status: 'active' } }, 'active');
  const detail = [st.suspend_reason || 'no reason'];
  if (st.suspend_cap) detail.push(`cap ${st.suspend_cap}`);
  if (st.suspended_since) detail.push(`since ${fmtTime(st.suspended_since)}`);
  return h('span', { class: 'status-wrap' },
    h('span', { class: 'badge suspended', dataset: { status: 'suspended' } }, 'suspended'),
    h('span', { class: 'status-detail' }, ' ' + detail.join(' · ')));
}

// ---------------------------------------------------------------- pages

// startPage shows a page ({el, refresh, stop}) and refreshes it every
// POLL_MS (never two refreshes at once).
function startPage(p) {
  stopPage();
  state.page = p;
  document.getElementById('main').replaceChildren(p.el);
  let busy = false;
  const tick = async () => {
    if (busy || state.page !== p || !p.refresh) return;
    busy = true;
    try {
      await p.refresh();
      if (state.page === p) {
        const u = p.el.querySelector('.updated');
        if (u) u.textContent = 'updated ' + new Date().toLocaleTimeString();
      }
    } catch (e) {
      if (state.page === p && e.status !== 401) flash(e.message);
    } finally {
      busy = false;
    }
  };
  tick();
  state.timer = setInterval(tick, POLL_MS);
}

function stopPage() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
  if (state.page && state.page.stop) state.page.stop();
  state.page = null;
}

function pageHead(title, ...extra) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), ...extra, h('span', { class: 'updated' }));
}

// ---- tenants

function tenantsPage() {
  let all = [];
  let page = 0;
  let gen = 0;
  const usage = new Map(); // tenant -> last usage
  const search = h('input', { id: 'tenant-search', type: 'search', placeholder: 'Search name or plan', 'aria-label': 'Search tenants' });
  const count = h('span', { class: 'count', id: 'tenant-count' });
  const tbody = h('tbody');
  const prev = h('button', { type: 'button', id: 'prev-page' }, '‹ Previous');
  const next = h('button', { type: 'button', id: 'next-page' }, 'Next ›');
  const pos = h('span', { id: 'page-pos' });
  const el = h('section', { class: 'tenants-page' },
    pageHead('Tenants', search, count),
    h('table', { id: 'tenants', class: 'grid' },
      h('thead', {}, h('tr', {}, ['Name', 'Plan', 'Status', 'Parallel calls', 'Minutes', 'Spend', 'Provisioned'].map((t) => h('th', {}, t)))),
      tbody),
    h('div', { class: 'pager' }, prev, pos, next),
    h('p', { class: 'note' }, `The tenant list is fetched whole and paged here, ${PAGE_SIZE} a page; the usage of the page shown is fetched every ${POLL_MS / 1000} s.`));

  const filtered = () => {
    const q = search.value.trim().toLowerCase();
    return q ? all.filter((t) => t.name.toLowerCase().includes(q) || (t.plan || '').toLowerCase().includes(q)) : all;
  };
  const row = (t) => {
    const u = usage.get(t.name);
    const caps = {};
    if (u) for (const c of u.caps) caps[c.cap] = c;
    // Until the usage is in, a placeholder of the bar's size (no layout shift).
    const cell = (name) => h('td', { class: 'usage' }, caps[name] ? bar(caps[name], u.alert_threshold_pct)
      : h('div', { class: 'bar loading' }, h('span', { class: 'track' }), h('span', { class: 'label' }, 'loading…')));
    return h('tr', { dataset: { tenant: t.name } },
      h('td', {}, h('a', { href: '#/tenants/' + enc(t.name), class: 'tenant-link' }, t.name)),
      h('td', {}, t.plan),
      h('td', { class: 'status' }, statusBadge((u && u.status) || t.status)),
      cell('max_parallel_calls'), cell('max_monthly_minutes'), cell('monthly_spend_limit'),
      h('td', { class: 'provisioned' }, fmtProvisioned(t.provisioning)));
  };
  const render = async (fetchUsage) => {
    const my = ++gen;
    const list = filtered();
    const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
    page = Math.min(page, pages - 1);
    const shown = list.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
    count.textContent = `${list.length} of ${all.length} tenants`;
    pos.textContent = `page ${page + 1} of ${pages}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    tbody.replaceChildren(...shown.map(row));
    if (!fetchUsage && shown.every((t) => usage.has(t.name))) return;
    const got = await Promise.all(shown.map((t) => api('GET', `/v1/tenants/${enc(t.name)}/usage`).catch(() => null)));
    if (my !== gen) return; // a newer render took over
    shown.forEach((t, i) => got[i] && usage.set(t.name, got[i]));
    tbody.replaceChildren(...shown.map(row));
  };
  search.addEventListener('input', () => {
    page = 0;
    render(false);
  });
  prev.addEventListener('click', () => {
    page--;
    render(false);
  });
  next.addEventListener('click', () => {
    page++;
    render(false);
  });
  return {
    el,
    refresh: async () => {
      all = await api('GET', '/v1/tenants');
      await render(true);
    },
  };
}

// fmtProvisioned is a tenant's use of its provisioning caps,
// "DIDs 2/5, users 3/10" (used/cap), each with data-* for tests; a count
// over its cap (lowered after they were assigned) is marked.
function fmtProvisioned(p) {
  if (!p) return '';
  const one = (label, key, c) => h('span', {
    class: 'prov' + (c.limit >= 0 && c.used > c.limit ? ' over' : ''),
    dataset: { prov: key, used: String(c.used), limit: String(c.limit) },
  }, `${label} ${c.used}/${c.limit < 0 ? 'unlimited' : c.limit}`);
  return h('span', {}, one('DIDs', 'dids', p.dids), ', ', one('users', 'users', p.users));
}

// ---- tenant detail

const LIMIT_FIELDS = [
  ['max_parallel_calls', 'Parallel calls', 'count'],
  ['max_parallel_inbound', 'Parallel inbound calls', 'count'],
  ['max_parallel_outbound', 'Parallel outbound calls', 'count'],
  ['max_calls_per_second', 'Calls per second', 'count'],
  ['cps_burst', 'Calls per second burst', 'burst'],
  ['max_monthly_minutes', 'Monthly minutes', 'count'],
  ['monthly_spend_limit', 'Monthly spend', 'money'],
  ['alert_threshold_pct', 'Alert threshold (%)', 'pct'],
  ['auto_suspend', 'Suspend at the cap', 'bool'],
  ['max_dids', 'DIDs (numbers assigned)', 'prov'],
  ['max_users', 'Users (on the roles)', 'prov'],
];

function tenantPage(name) {
  const path = `/v1/tenants/${enc(name)}`;
  const title = h('h1', {}, name);
  const status = h('span', { id: 'tenant-status' });
  const planInfo = h('span', { id: 'tenant-plan', class: 'muted' });

  // Suspend / resume.
  const reason = h('input', { id: 'suspend-reason', name: 'reason', placeholder: 'Reason (kept in the audit log)' });
  const suspendBtn = gate(h('button', { type: 'button', id: 'suspend' }, 'Suspend'), 'admin');
  const resumeBtn = gate(h('button', { type: 'button', id: 'resume' }, 'Resume'), 'admin');
  const actionMsg = h('p', { class: 'error', id: 'suspend-error', hidden: true });
  if (!can('admin')) reason.disabled = true;
  const doStatus = async (op) => {
    actionMsg.hidden = true;
    try {
      await api('POST', `${path}/${op}`, { reason: reason.value.trim() });
      reason.value = '';
      flash(op === 'suspend' ? `${name} suspended` : `${name} resumed`, 'ok');
      await refresh();
    } catch (e) {
      actionMsg.hidden = false;
      actionMsg.textContent = e.message;
    }
  };
  suspendBtn.addEventListener('click', () => doStatus('suspend'));
  resumeBtn.addEventListener('click', () => doStatus('resume'));

  // Usage.
  const usageBox = h('div', { id: 'tenant-usage', class: 'usage-box' });
  const chart = h('div', { id: 'usage-chart', class: 'chart' });
  const users = h('div', { id: 'user-usage' });

  // Limits form.
  const limitsForm = h('form', { id: 'limits-form', class: 'limits', autocomplete: 'off' });
  const limitsMsg = h('p', { id: 'limits-error', class: 'error', hidden: true });
  const limitRows = {};
  const limitsBody = h('tbody');
  for (const [field, label, kind] of LIMIT_FIELDS) {
    let input;
    if (kind === 'bool') {
      input = h('select', { name: field, dataset: { field } },
        h('option', { value: '' }, 'inherit'), h('option', { value: 'true' }, 'on'), h('option', { value: 'false' }, 'off'));
    } else {
      input = h('input', { name: field, dataset: { field }, inputmode: kind === 'money' ? 'decimal' : 'numeric', placeholder: 'inherit' });
    }
    if (!can('settings')) input.disabled = true;
    const eff = h('td', { class: 'effective', dataset: { field } });
    const src = h('td', { class: 'source', dataset: { field } });
    const err = h('td', { class: 'field-error', dataset: { field } });
    limitRows[field] = { input, eff, src, err, kind };
    limitsBody.append(h('tr', { dataset: { field } }, h('th', {}, h('label', {}, label, h('code', {}, field))), h('td', {}, input), eff, src, err));
  }
  const saveBtn = gate(h('button', { type: 'submit', id: 'save-limits' }, 'Save limits'), 'settings');
  const resetBtn = gate(h('button', { type: 'button', id: 'reset-limits' }, 'Reset to defaults'), 'settings');
  limitsForm.append(
    h('p', { class: 'hint' }, 'Blank = inherit the plan, -1 = unlimited, 0 = blocked (DIDs, users: none may be added); money as a decimal (12.50). Lowering the DIDs or users cap below what the tenant has keeps them; only adding more is refused.'),
    h('table', { class: 'grid' }, h('thead', {}, h('tr', {}, ['Limit', 'Override', 'Effective', 'Source', ''].map((t) => h('th', {}, t)))), limitsBody),
    h('div', { class: 'buttons' }, saveBtn, resetBtn), limitsMsg);

  const showLimits = (lv, setInputs) => {
    planInfo.textContent = `plan ${lv.plan}`;
    for (const [field, r] of Object.entries(limitRows)) {
      const o = lv.overrides[field];
      const e = lv.effective[field];
      if (setInputs) {
        r.input.value = o === null || o === undefined ? '' : String(o);
        r.input.classList.remove('invalid');
        r.err.textContent = '';
      }
      r.eff.textContent = fmtLimit(e, r.kind);
      r.src.textContent = o === null || o === undefined ? `plan ${lv.plan}` : 'override';
      r.src.dataset.source = o === null || o === undefined ? 'plan' : 'override';
    }
  };
  const loadLimits = async (setInputs) => showLimits(await api('GET', `${path}/limits`), setInputs);
  limitsForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    limitsMsg.hidden = true;
    const patch = {};
    for (const [field, r] of Object.entries(limitRows)) {
      r.input.classList.remove('invalid');
      r.err.textContent = '';
      const v = r.input.value.trim();
      if (v === '') patch[field] = null;
      else if (r.kind === 'bool') patch[field] = v === 'true';
      else if (r.kind === 'money') patch[field] = v; // a string: exact, never through a float
      else patch[field] = /^-?\d+$/.test(v) ? Number(v) : v; // not a number: the API names the field
    }
    try {
      showLimits(await api('PATCH', `${path}/limits`, patch, { type: 'application/merge-patch+json' }), true);
      flash(`limits of ${name} saved`, 'ok');
    } catch (e) {
      limitsMsg.hidden = false;
      limitsMsg.textContent = e.message;
      const r = limitRows[e.field];
      if (r) {
        r.input.classList.add('invalid');
        r.err.textContent = e.message;
      }
    }
  });
  resetBtn.addEventListener('click', async () => {
    limitsMsg.hidden = true;
    try {
      showLimits(await api('POST', `${path}/reset`), true);
      flash(`limits of ${name} reset to the defaults`, 'ok');
    } catch (e) {
      limitsMsg.hidden = false;
      limitsMsg.textContent = e.message;
    }
  });

  // Roles.
  const rolesBody = h('tbody');
  const rolesText = h('textarea', { id: 'roles-json', rows: 6, spellcheck: 'false' });
  const rolesSave = gate(h('button', { type: 'button', id: 'save-roles' }, 'Save roles'), 'settings');
  const rolesMsg = h('p', { class: 'error', id: 'roles-error', hidden: true });
  if (!can('settings')) rolesText.readOnly = true;
  const showRoles = (roles, setText) => {
    rolesBody.replaceChildren(...(roles.length ? roles.map((r) => h('tr', { dataset: { role: r.name } },
      h('td', {}, r.name), h('td', {}, fmtLimit(r.max_parallel_calls, 'count') || 'none'),
      h('td', {}, fmtLimit(r.max_monthly_minutes, 'count') || 'none'),
      h('td', {}, (r.users || []).join(', ')), h('td', {}, (r.patterns || []).join(', ')))) : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'no roles'))]));
    if (setText) rolesText.value = JSON.stringify(roles, null, 2);
  };
  rolesSave.addEventListener('click', async () => {
    rolesMsg.hidden = true;
    let roles;
    try {
      roles = JSON.parse(rolesText.value);
    } catch (e) {
      rolesMsg.hidden = false;
      rolesMsg.textContent = 'not JSON: ' + e.message;
      return;
    }
    try {
      showRoles(await api('PUT', `${path}/roles`, roles), true);
      flash(`roles of ${name} saved`, 'ok');
    } catch (e) {
      rolesMsg.hidden = false;
      rolesMsg.textContent = e.message;
    }
  });

  const el = h('section', { class: 'tenant-page', dataset: { tenant: name } },
    h('p', {}, h('a', { href: '#/tenants' }, '‹ Tenants')),
    h('div', { class: 'page-head' }, title, status, planInfo, h('span', { class: 'updated' })),
    h('div', { class: 'panel', id: 'status-panel' }, h('h2', {}, 'Status'),
      h('div', { class: 'buttons' }, reason, suspendBtn, resumeBtn), actionMsg),
    h('div', { class: 'panel' }, h('h2', {}, 'Usage this cycle'), usageBox),
    h('div', { class: 'panel' }, h('h2', {}, 'Minutes per day'), chart),
    h('div', { class: 'panel' }, h('h2', {}, 'Limits'), limitsForm),
    h('div', { class: 'panel' }, h('h2', {}, 'Roles'),
      h('table', { class: 'grid', id: 'roles' }, h('thead', {}, h('tr', {}, ['Role', 'Parallel calls per user', 'Minutes per user', 'Users', 'Patterns'].map((t) => h('th', {}, t)))), rolesBody),
      h('details', {}, h('summary', {}, 'Edit roles (JSON)'), rolesText, h('div', { class: 'buttons' }, rolesSave), rolesMsg),
      h('h3', {}, 'Users on a role with a minutes cap'), users));

  const showUsage = (u) => {
    status.replaceChildren(statusBadge(u.status));
    suspendBtn.hidden = u.status.suspended;
    resumeBtn.hidden = !u.status.suspended;
    const now = Date.now();
    usageBox.replaceChildren(h('p', { class: 'muted' }, `cycle ${fmtTime(u.cycle_start)} – ${fmtTime(u.cycle_end)} · alert at ${u.alert_threshold_pct} % · ${u.status.active_calls} active calls`),
      ...u.caps.map((c) => {
        const proj = c.cap === 'max_parallel_calls' ? '' : projection(c.limit, c.exhausts_at, now);
        return h('div', { class: 'cap-row', dataset: { cap: c.cap } },
          h('span', { class: 'cap-name' }, CAP_LABEL[c.cap] || c.cap), bar(c, u.alert_threshold_pct),
          h('span', { class: 'projection', dataset: { cap: c.cap, exhaustsAt: c.exhausts_at || '' } }, proj));
      }));
    chart.replaceChildren(dayChart(u));
    users.replaceChildren(u.users.length
      ? h('table', { class: 'grid' }, h('thead', {}, h('tr', {}, ['User', 'Role', 'Minutes', 'Runs out'].map((t) => h('th', {}, t)))),
        h('tbody', {}, u.users.map((x) => h('tr', { dataset: { user: x.user } }, h('td', {}, x.user), h('td', {}, x.role),
          h('td', { class: 'usage' }, bar({ cap: 'user_minutes', unit: 'minutes', used: x.minutes, limit: x.limit, percent: x.percent }, u.alert_threshold_pct)),
          h('td', { class: 'projection', dataset: { exhaustsAt: x.exhausts_at || '' } }, projection(x.limit, x.exhausts_at, now))))))
      : h('p', { class: 'muted' }, 'none'));
  };
  const refresh = async () => {
    const [u, lv, roles] = await Promise.all([api('GET', `${path}/usage`), api('GET', `${path}/limits`), api('GET', `${path}/roles`)]);
    if (state.page !== page) return;
    showUsage(u);
    showLimits(lv, false);
    showRoles(roles, false);
  };
  const page = { el, refresh };
  // The form is filled once (and after a save or reset), never while the
  // operator types.
  Promise.all([loadLimits(true), api('GET', `${path}/roles`).then((r) => showRoles(r, true))]).catch((e) => flash(e.message));
  return page;
}

// projection says when a budget runs out at the current burn rate.
function projection(limit, exhaustsAt, now) {
  if (limit === null || limit === undefined) return 'unlimited';
  if (!exhaustsAt) return 'does not run out this cycle at the current burn rate';
  if (new Date(exhaustsAt).getTime() <= now) return 'exhausted';
  return `runs out at ${fmtTime(exhaustsAt)} at the current burn rate`;
}

// dayChart draws the minutes of each day of the cycle as SVG bars.
function dayChart(u) {
  const start = new Date(u.cycle_start);
  const end = new Date(u.cycle_end);
  const byDate = new Map(u.days.map((d) => [d.date, d]));
  const days = [];
  for (let d = new Date(start); d < end; d.setUTCDate(d.getUTCDate() + 1)) days.push(d.toISOString().slice(0, 10));
  const busiest = Math.max(0, ...u.days.map((d) => d.seconds / 60));
  const max = busiest > 0 ? busiest : 1;
  const W = 14;
  const H = 120;
  const svg = s('svg', { viewBox: `0 0 ${days.length * W} ${H + 16}`, class: 'days', role: 'img', 'aria-label': 'minutes per day' });
  days.forEach((date, i) => {
    const d = byDate.get(date);
    const min = d ? d.seconds / 60 : 0;
    const bh = d ? Math.max(1, (min / max) * H) : 0;
    const r = s('rect', { x: i * W + 2, y: H - bh, width: W - 4, height: bh, class: d ? 'day' : 'day empty', dataset: { date, minutes: min.toFixed(3) } },
      s('title', {}, d ? `${date}: ${fmtNum(min)} min, ${d.calls} calls, spend ${fmtNum(d.spend)}` : `${date}: no calls`));
    svg.append(r);
    const dom = Number(date.slice(8));
    if (dom === 1 || dom % 5 === 0) svg.append(s('text', { x: i * W + W / 2, y: H + 12, class: 'tick' }, String(dom)));
  });
  const total = u.days.reduce((a, d) => a + d.seconds / 60, 0);
  return h('div', {}, svg, h('p', { class: 'muted' }, `${u.days.length} days with usage, ${fmtNum(total)} min settled (calls count on the day they end), busiest day ${fmtNum(busiest)} min`));
}

// ---- plans

function plansPage() {
  const tbody = h('tbody');
  const el = h('section', {}, pageHead('Plans'),
    h('table', { class: 'grid', id: 'plans' },
      h('thead', {}, h('tr', {}, ['Plan', 'Parallel', 'CPS', 'Minutes', 'Spend', 'Alert', 'Suspend at cap', 'Destinations', 'Rates'].map((t) => h('th', {}, t)))),
      tbody));
  return {
    el,
    refresh: async () => {
      const plans = await api('GET', '/v1/plans');
      tbody.replaceChildren(...plans.map((p) => {
        const l = p.limits;
        const dests = Object.entries(l.destinations || {}).map(([k, v]) => `${k}: ${v ? 'on' : 'off'}`).join(', ');
        return h('tr', { dataset: { plan: p.name } },
          h('td', {}, p.name), h('td', {}, fmtLimit(l.max_parallel_calls)), h('td', {}, fmtLimit(l.max_calls_per_second)),
          h('td', {}, fmtLimit(l.max_monthly_minutes)), h('td', {}, fmtLimit(l.monthly_spend_limit)),
          h('td', {}, fmtLimit(l.alert_threshold_pct, 'pct')), h('td', {}, fmtLimit(l.auto_suspend, 'bool')),
          h('td', {}, dests || 'all on'),
          h('td', {}, (p.rates || []).length ? h('details', {}, h('summary', {}, `${p.rates.length} rates`),
            h('table', { class: 'rates' }, h('tbody', {}, p.rates.map((r) => h('tr', {},
              h('td', {}, r.prefix || '(any)'), h('td', {}, `${fmtNum(r.per_minute)}/min`),
              h('td', {}, `connect ${fmtNum(r.connect_fee)}`), h('td', {}, String(r.increments || '')), h('td', {}, r.class || ''))))))
            : 'free'));
      }));
    },
  };
}

// ---- live calls

function callsPage() {
  const filter = h('input', { id: 'calls-tenant', type: 'search', placeholder: 'Tenant', 'aria-label': 'Only this tenant' });
  const tbody = h('tbody');
  const count = h('span', { class: 'count', id: 'calls-count' });
  const el = h('section', {}, pageHead('Live calls', filter, count),
    h('table', { class: 'grid', id: 'calls' },
      h('thead', {}, h('tr', {}, ['Tenant', 'Direction', 'Caller', 'Callee', 'State', 'Started', 'Billed', 'Media (caller / callee packets)', ''].map((t) => h('th', {}, t)))),
      tbody));
  const refresh = async () => {
    const t = filter.value.trim();
    const calls = await api('GET', '/v1/calls' + (t ? '?tenant=' + enc(t) : ''));
    count.textContent = `${calls.length} active`;
    tbody.replaceChildren(...(calls.length ? calls.map((c) => {
      const btn = gate(h('button', { type: 'button', class: 'hangup', dataset: { call: c.id } }, 'Hang up'), 'admin');
      btn.addEventListener('click', async () => {
        btn.disabled = true;
        try {
          await api('DELETE', '/v1/calls/' + enc(c.id));
          flash(`call ${c.call_id} hung up`, 'ok');
        } catch (e) {
          flash(e.message);
        }
        refresh().catch(() => {});
      });
      return h('tr', { dataset: { call: c.id, tenant: c.tenant } },
        h('td', {}, c.tenant), h('td', {}, c.direction), h('td', {}, c.caller), h('td', {}, c.callee), h('td', {}, c.state),
        h('td', {}, fmtTime(c.started)), h('td', {}, `${fmtNum(c.seconds)} s`),
        h('td', {}, c.media ? `${c.media.caller.packets} / ${c.media.callee.packets}` : '—'), h('td', {}, btn));
    }) : [h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'no active calls'))]));
  };
  filter.addEventListener('change', () => refresh().catch((e) => flash(e.message)));
  return { el, refresh };
}

// ---- audit

function toRFC3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return isNaN(d) ? local : d.toISOString();
}

function auditPage() {
  const tenant = h('input', { name: 'tenant', id: 'audit-tenant', placeholder: 'all tenants' });
  const from = h('input', { name: 'from', id: 'audit-from', type: 'datetime-local', step: 1 });
  const to = h('input', { name: 'to', id: 'audit-to', type: 'datetime-local', step: 1 });
  const limit = h('select', { name: 'limit', id: 'audit-limit' }, [50, 100, 500, 1000].map((n) => h('option', { value: n, selected: n === 100 }, String(n))));
  const form = h('form', { id: 'audit-form', class: 'filters' },
    h('label', {}, 'Tenant ', tenant), h('label', {}, 'From ', from), h('label', {}, 'To ', to), h('label', {}, 'At most ', limit),
    h('button', { type: 'submit' }, 'Filter'));
  const msg = h('p', { class: 'error', id: 'audit-error', hidden: true });
  const tbody = h('tbody');
  const el = h('section', {}, pageHead('Audit log'), form, msg,
    h('table', { class: 'grid', id: 'audit' },
      h('thead', {}, h('tr', {}, ['At', 'Actor', 'Action', 'Resource', 'Tenant', 'Reason', 'Change'].map((t) => h('th', {}, t)))),
      tbody));
  let applied = { tenant: '', from: '', to: '', limit: '100' };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    applied = { tenant: tenant.value.trim(), from: toRFC3339(from.value), to: toRFC3339(to.value), limit: limit.value };
    refresh().catch(() => {});
  });
  if (!can('billing')) {
    for (const x of form.elements) x.disabled = true;
    return { el: h('section', {}, pageHead('Audit log'), h('p', { class: 'muted', id: 'audit-denied' }, `The audit log needs a token of scope ${NEEDS.billing}; this one is ${state.me.scope}.`)) };
  }
  const refresh = async () => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(applied)) if (v) q.set(k, v);
    let entries;
    try {
      entries = await api('GET', '/v1/audit?' + q.toString());
      msg.hidden = true;
    } catch (e) {
      msg.hidden = false;
      msg.textContent = e.message;
      return;
    }
    tbody.replaceChildren(...(entries.length ? entries.map((a) => h('tr', { dataset: { action: a.action, tenant: a.tenant || '' } },
      h('td', {}, fmtTime(a.at)), h('td', {}, a.actor), h('td', { class: 'action' }, a.action), h('td', {}, a.resource),
      h('td', {}, a.tenant || ''), h('td', {}, [a.reason, a.cap && `cap ${a.cap}`].filter(Boolean).join(' · ')),
      h('td', {}, a.before || a.after ? h('details', {}, h('summary', {}, 'before / after'),
        h('pre', {}, 'before: ' + JSON.stringify(a.before ?? null, null, 1) + '\nafter: ' + JSON.stringify(a.after ?? null, null, 1))) : '')))
      : [h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'no entries'))]));
  };
  return { el, refresh };
}

// ---- events (server-sent events through fetch: EventSource cannot send
// the Authorization header)

function eventsPage() {
  const filter = h('input', { id: 'events-tenant', type: 'search', placeholder: 'Tenant', 'aria-label': 'Only this tenant' });
  const conn = h('span', { id: 'events-conn', class: 'muted' }, 'connecting…');
  const list = h('tbody');
  const el = h('section', {}, pageHead('Events (live)', filter, conn),
    h('table', { class: 'grid', id: 'events' }, h('thead', {}, h('tr', {}, ['Time', 'Type', 'Tenant', 'Detail'].map((t) => h('th', {}, t)))), list));
  let ctrl = null;
  let stopped = false;
  let retry = null;
  const kept = [];
  // History: the last 15 minutes on the first connect, and on a reconnect
  // what was published since the last event shown (ids seen are skipped);
  // a source without history (the outbox) answers 400 on since: live only.
  let history = true;
  let lastAt = 0;
  const seen = new Set();
  const show = (ev) => {
    if (ev.id) {
      if (seen.has(ev.id)) return;
      seen.add(ev.id);
      if (seen.size > 2000) seen.delete(seen.values().next().value);
    }
    lastAt = Date.now();
    let d = {};
    try {
      d = JSON.parse(ev.data);
    } catch (e) {
      d = {};
    }
    const detail = [d.call_id && `call ${d.call_id}`, d.caller && `${d.caller} → ${d.callee}`, d.billed_seconds !== undefined && `${d.billed_seconds} s`,
      d.cap && `cap ${d.cap}`, d.reason, d.cause].filter(Boolean).join(' · ');
    kept.unshift(h('tr', { dataset: { type: ev.type, tenant: d.tenant || '' } },
      h('td', {}, fmtTime(d.time)), h('td', { class: 'type' }, ev.type), h('td', {}, d.tenant || ''), h('td', {}, detail)));
    kept.length = Math.min(kept.length, 300);
    list.replaceChildren(...kept);
  };
  const connect = async () => {
    if (stopped) return;
    ctrl = new AbortController();
    const t = filter.value.trim();
    const q = [];
    if (t) q.push('tenant=' + enc(t));
    if (history) q.push('since=' + (lastAt ? Math.min(86400, Math.ceil((Date.now() - lastAt) / 1000) + 2) + 's' : '15m'));
    try {
      const resp = await fetch('/v1/events' + (q.length ? '?' + q.join('&') : ''), { headers: { Authorization: 'Bearer ' + token() }, signal: ctrl.signal, cache: 'no-store' });
      if (!resp.ok) {
        const body = await resp.json().catch(() => ({ error: { message: resp.statusText } }));
        if (history && resp.status === 400 && body.error.field === 'since') {
          history = false;
          setTimeout(connect, 0);
          return;
        }
        throw new Error(body.error.message);
      }
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = { type: 'message', data: '', id: '' };
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) {
              if (line.includes('tollgate events from')) conn.textContent = 'live (' + line.replace(/^:\s*tollgate events from\s*/, 'from ') + ')';
              continue;
            }
            const [k, ...rest] = line.split(':');
            const v = rest.join(':').replace(/^ /, '');
            if (k === 'event') ev.type = v;
            else if (k === 'data') data.push(v);
            else if (k === 'id') ev.id = v;
          }
          if (data.length) {
            ev.data = data.join('\n');
            show(ev);
          }
        }
      }
      conn.textContent = 'disconnected; reconnecting…';
    } catch (e) {
      if (stopped || e.name === 'AbortError') return;
      conn.textContent = 'error: ' + e.message + '; reconnecting…';
    }
    if (!stopped) retry = setTimeout(connect, POLL_MS);
  };
  filter.addEventListener('change', () => {
    lastAt = 0; // the new filter's last 15 minutes
    if (ctrl) ctrl.abort();
    clearTimeout(retry);
    conn.textContent = 'connecting…';
    setTimeout(connect, 0);
  });
  connect();
  return {
    el,
    stop: () => {
      stopped = true;
      clearTimeout(retry);
      if (ctrl) ctrl.abort();
    },
  };
}

// ---------------------------------------------------------------- login, router

function showLogin(msg) {
  stopPage();
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  const tpl = document.getElementById('login-tpl').content.cloneNode(true);
  document.getElementById('main').replaceChildren(tpl);
  const form = document.getElementById('login-form');
  const err = document.getElementById('login-error');
  if (msg) {
    err.hidden = false;
    err.textContent = msg;
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tok = form.elements.token.value.trim();
    err.hidden = true;
    try {
      state.me = await api('GET', '/v1/whoami', undefined, { token: tok, login: true });
      sessionStorage.setItem(TOKEN_KEY, tok);
      flash('');
      signedIn();
    } catch (e) {
      err.hidden = false;
      err.textContent = e.status === 401 ? 'The API refused this token.' : e.message;
    }
  });
}

function logout(msg) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.me = null;
  showLogin(msg);
}

function signedIn() {
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  const who = document.getElementById('who');
  who.textContent = `${state.me.name} (${state.me.scope})`;
  who.dataset.scope = state.me.scope;
  route();
}

function route() {
  if (!state.me) return;
  flash('');
  const parts = (location.hash.replace(/^#\/?/, '') || 'tenants').split('/').map(decodeURIComponent);
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('current', a.dataset.page === parts[0]);
  switch (parts[0]) {
    case 'plans':
      return startPage(plansPage());
    case 'calls':
      return startPage(callsPage());
    case 'audit':
      return startPage(auditPage());
    case 'events':
      return startPage(eventsPage());
    case 'tenants':
    default:
      return startPage(parts[1] ? tenantPage(parts[1]) : tenantsPage());
  }
}

async function boot() {
  document.getElementById('logout').addEventListener('click', () => logout());
  window.addEventListener('hashchange', route);
  const tok = token();
  if (!tok) return showLogin();
  try {
    state.me = await api('GET', '/v1/whoami', undefined, { login: true });
    signedIn();
  } catch (e) {
    logout(e.status === 401 ? 'The API refused the stored token: sign in again.' : e.message);
  }
}

document.addEventListener('DOMContentLoaded', boot);
