// The line-side HMI page: wires the gateway connection, the alarm book and the views together.
import { t, language, setLanguage, applyTexts } from './i18n.js';
import { esc, localClock, learnZone } from './format.js';
import { GatewayConnection, PING_INTERVAL_MS } from './connection.js';
import { AlertBook, AlertListView, FLOOD_THRESHOLD, alertText, priorityBadge, setChartTypeLookup } from './alerts.js';
import { ActionDialog, Feedback } from './dialogs.js';
import { actionOpener } from './actions.js';
import { Toaster } from './toasts.js';
import { Annunciator } from './sound.js';
import { ProductView } from './product.js';
import { ICONS } from './icons.js';
import { OutputLamps } from './outputs.js';

const FULL_RELOAD_LIMIT = 500; // the contract's ceiling for get_alerts
const HISTORY_ALERTS = 200; // alerts fetched on a fresh connect, so the resolved tab is not empty
const LANG_KEY = 'spc-hmi:language';

const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
const token = params.get('token');
// ping_ms exists for tests that must see a dead connection detected in seconds, not half a minute.
const pingMs = Math.max(200, Number(params.get('ping_ms')) || PING_INTERVAL_MS);

const ui = { view: 'alarms', tab: 'active', productId: null, sort: 'priority', selectedId: null, role: 'operator' };
let firstLoadDone = false;
let fullReloadId = null;
let reloadCounter = 0;

const book = new AlertBook();
const feed = new GatewayConnection('/ws/spc/notifications/', { token, pingMs, name: 'feed' });
const horn = new Annunciator();
const feedback = new Feedback($('#feedback'));
const dialog = new ActionDialog($('#modal'));
const list = new AlertListView($('#alert-list'), {
  onSelect: (id) => select(id),
  onQuickAck: (id) => openAction('ack', [book.get(id)]),
});
const toaster = new Toaster($('#toasts'), {
  onOpen: (id) => {
    const alert = [...book.alerts.values()].find((a) => String(a.id) === String(id));
    if (!alert) return;
    showView('alarms');
    ui.tab = alert.status === 'SHELVED' ? 'shelved' : alert.status === 'RESOLVED' ? 'resolved' : 'active';
    select(alert.id);
  },
});
const products = new ProductView($('#view-charts'), {
  token,
  pingMs,
  onConnectionState: () => renderConnection(),
  onSelect: () => ui.view === 'charts' && showView('charts'), // keeps the URL hash a deep link
});
// Alarm cards name the exact chart (MR, R, S, I, X̄) of a characteristic the catalog describes.
setChartTypeLookup((productId, name) => products.products.get(productId)?.characteristics.get(name)?.chart ?? null);

// ---------------------------------------------------------------- language

function storedLanguage() {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null;
  }
}

function gatewayLanguage(message) {
  if (message.language === 'ko' || message.language === 'en') return message.language;
  // The contract sends the seed's greeting in the configured language: Hangul means Korean.
  return /[\uac00-\ud7a3]/.test(message.message || '') ? 'ko' : 'en';
}

function switchLanguage(code, remember) {
  if (remember) {
    try {
      localStorage.setItem(LANG_KEY, code);
    } catch {
      /* not remembered; still switched */
    }
  }
  if (setLanguage(code)) {
    renderAll();
    outputLamps.render(); // the lamps' titles say on/off in the new language
  }
}

// ---------------------------------------------------------------- feed messages

feed.addEventListener('connected', (event) => {
  const { message, resumed, reset } = event.detail;
  outputLamps.poll(); // at once, not at the next tick: a PLC write may have failed while we were away
  ui.role = message.role || 'operator';
  learnZone(message.timestamp);
  tick();
  $('#gw-name').textContent = message.gateway || '';
  if (!storedLanguage()) switchLanguage(gatewayLanguage(message), false);
  if (reset) requestFullReload();
  else if (!resumed) feed.send({ type: 'get_alerts', limit: HISTORY_ALERTS, request_id: 'history' });
  renderAll();
});
feed.addEventListener('state', () => renderConnection());
feed.addEventListener('message', (event) => onFeedMessage(event.detail));

function onFeedMessage(msg) {
  switch (msg.type) {
    case 'alerts':
      onAlerts(msg);
      break;
    case 'alert':
      if (msg.alert) {
        const { isNew, alert } = book.upsert(msg.alert);
        noteProduct(alert);
        if (isNew && alert.status === 'OPEN') announce([alert]);
      }
      break;
    case 'measurement':
    case 'subgroup':
    case 'violation':
    case 'capability': {
      const body = msg[msg.type] || {};
      noteProduct(body);
      break;
    }
    case 'replay_complete':
      if (msg.complete === false) requestFullReload();
      break;
    case 'error':
      if (msg.request_id === undefined || msg.request_id === null) feedback.show(msg.message || msg.code, 'error');
      break;
    default:
      break;
  }
}

function onAlerts(msg) {
  const alerts = Array.isArray(msg.alerts) ? msg.alerts : [];
  const known = new Set(book.alerts.keys());
  if (msg.snapshot) book.replaceUnresolved(alerts);
  else if (fullReloadId !== null && msg.request_id === fullReloadId) {
    fullReloadId = null;
    book.replaceAll(alerts);
  } else book.merge(alerts);
  for (const alert of alerts) noteProduct(alert);
  // On the very first snapshot everything is old news; after a reconnect, alerts this screen has
  // never seen were raised while it was away, and the operator must be told.
  if (firstLoadDone) announce(alerts.filter((a) => !known.has(a.id) && a.status === 'OPEN'));
  if (msg.snapshot) firstLoadDone = true;
}

function requestFullReload() {
  fullReloadId = `reload-${++reloadCounter}`;
  feed.send({ type: 'get_alerts', limit: FULL_RELOAD_LIMIT, request_id: fullReloadId });
}

function announce(alerts) {
  for (const alert of alerts) {
    toaster.alert(alert);
    horn.alert(alert.priority);
  }
}

function noteProduct(body) {
  if (!body || body.product_id === undefined || body.product_id === null) return;
  products.noteProduct({ id: body.product_id, code: body.product_code, name: body.product_name });
  if (body.characteristic) products.noteCharacteristic(body.product_id, body.characteristic);
  restoreHash();
}

book.addEventListener('change', () => {
  scheduleRender();
  horn.update(book.highestUnacked());
});

// ---------------------------------------------------------------- actions

const openAction = actionOpener({ feed, book, dialog, feedback, ui });

function select(id) {
  ui.selectedId = id;
  scheduleRender();
}

// ---------------------------------------------------------------- views

function showView(view) {
  ui.view = view;
  $('#view-alarms').hidden = view !== 'alarms';
  $('#view-charts').hidden = view !== 'charts';
  for (const b of document.querySelectorAll('.view-tab')) b.classList.toggle('on', b.dataset.view === view);
  const hash = view === 'charts' && products.productId !== null
    ? `#charts/${products.productId}/${encodeURIComponent(products.characteristic || '')}` : `#${view}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
  if (view === 'charts') products.render();
  renderRecalc();
}

function openChart(productId, characteristic) {
  products.show(productId, characteristic);
  showView('charts');
}

let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    renderAlarms();
  });
}

function renderAll() {
  applyTexts();
  renderTools();
  renderAlarms();
  renderConnection();
  products.renderChooser();
  products.render();
}

function renderAlarms() {
  const counts = book.counts();
  $('#count-open').textContent = counts.OPEN;
  $('#count-ack').textContent = counts.ACKNOWLEDGED;
  $('#count-shelved').textContent = counts.SHELVED;
  $('#tile-open').classList.toggle('alarming', counts.OPEN > 0);
  const nav = $('#nav-count');
  nav.textContent = counts.OPEN ? String(counts.OPEN) : '';
  nav.hidden = !counts.OPEN;
  const recent = book.recentCount();
  const flood = recent > FLOOD_THRESHOLD;
  $('#tile-flood').classList.toggle('flooding', flood);
  $('#flood-label').textContent = flood ? t('flood') : String(recent);
  $('#flood-detail').textContent = flood ? t('flood_detail', { n: recent }) : t('rate_detail');

  for (const b of document.querySelectorAll('#list-tabs .seg-btn')) b.classList.toggle('on', b.dataset.tab === ui.tab);
  const known = new Map([...products.products.values()].map((p) => [p.id, p]));
  for (const [id, p] of book.products()) if (!known.has(id)) known.set(id, p);
  const chips = [`<button class="chip${ui.productId === null ? ' on' : ''}" data-filter="">${esc(t('filter_all'))}</button>`];
  for (const p of [...known.values()].sort((a, b) => a.id - b.id)) {
    chips.push(`<button class="chip${ui.productId === p.id ? ' on' : ''}" data-filter="${esc(p.id)}">${esc(p.code)}</button>`);
  }
  const filterHtml = chips.join('');
  if ($('#product-filter').innerHTML !== filterHtml) $('#product-filter').innerHTML = filterHtml;
  $('#btn-sort').textContent = ui.sort === 'priority' ? t('sort_priority') : t('sort_newest');

  const visible = book.visible({ tab: ui.tab, productId: ui.productId, sort: ui.sort });
  const unacked = visible.filter((a) => a.status === 'OPEN');
  const ackAll = $('#btn-ack-all');
  ackAll.textContent = t('ack_all_visible', { n: unacked.length });
  ackAll.disabled = unacked.length === 0 || ui.role === 'viewer';
  ackAll.hidden = ui.tab !== 'active';
  if (ui.selectedId !== null && !visible.some((a) => a.id === ui.selectedId)) ui.selectedId = null;
  list.selectedId = ui.selectedId;
  list.canAct = ui.role !== 'viewer';
  list.render(visible, t(`list_empty_${ui.tab}`));

  const selected = ui.selectedId !== null ? book.get(ui.selectedId) : null;
  const canAct = Boolean(selected) && ui.role !== 'viewer';
  $('#selection').innerHTML = selected
    ? `${priorityBadge(selected.priority)}<span class="code">${esc(selected.product_code ?? '')}</span><span class="sel-title">${esc(alertText(selected, 'title'))}</span><span class="aid">#${esc(selected.id)}</span>`
    : `<span class="muted">${esc(ui.role === 'viewer' ? t('conn_view_only') : t('select_hint'))}</span>`;
  $('#btn-act-ack').disabled = !canAct || selected.status !== 'OPEN';
  $('#btn-act-shelve').disabled = !canAct || selected.status === 'RESOLVED' || selected.status === 'SHELVED';
  // A shelved alarm offers Unshelve in Shelve's place: the bar keeps its width on a small panel.
  const shelved = Boolean(selected) && selected.status === 'SHELVED';
  $('#btn-act-shelve').hidden = shelved;
  $('#btn-act-unshelve').hidden = !shelved;
  $('#btn-act-unshelve').disabled = !canAct || !shelved;
  $('#btn-act-resolve').disabled = !canAct || selected.status === 'RESOLVED';
  $('#btn-act-comment').disabled = !canAct; // a finding can be added in any state, resolved included
  $('#btn-act-chart').disabled = !selected || selected.product_id === undefined;
  renderRecalc();
}

/** New control limits are a quality engineer's act on the open chart; a view-only screen has no button. */
function renderRecalc() {
  const button = $('#btn-recalc');
  button.hidden = ui.role === 'viewer';
  button.disabled = products.productId === null || !products.characteristic || feed.state !== 'live';
}

function renderTools() {
  const sound = $('#btn-sound');
  sound.querySelector('.ico').innerHTML = horn.enabled ? ICONS.soundOn : ICONS.soundOff;
  sound.querySelector('.lbl').textContent = horn.enabled ? t('sound_on') : t('sound_enable');
  sound.classList.toggle('needs-tap', !horn.enabled);
  const silence = $('#btn-silence');
  silence.querySelector('.ico').innerHTML = ICONS.silence;
  silence.disabled = !horn.sounding;
  silence.classList.toggle('sounding', Boolean(horn.sounding) && horn.enabled);
  silence.querySelector('.lbl').textContent = horn.silenced ? t('sound_silenced') : t('sound_silence');
  $('#btn-lang .ico').innerHTML = ICONS.globe;
  $('.stale-icon').innerHTML = ICONS.warning;
}

function renderConnection() {
  const el = $('#conn');
  const state = feed.state;
  const last = feed.lastUpdate ? t('conn_last_update', { time: localClock(feed.lastUpdate) }) : t('conn_never');
  let detail = '';
  if (state === 'live') detail = ui.role === 'viewer' ? t('conn_view_only') : last;
  else if (state === 'connecting') detail = '';
  else {
    const seconds = feed.retryAt ? Math.max(0, Math.ceil((feed.retryAt - Date.now()) / 1000)) : 0;
    detail = `${last}${feed.retryAt ? ` · ${t('conn_retry_in', { s: seconds })}` : ''}`;
    if (navigator.onLine === false) detail = `${t('conn_browser_offline')} · ${detail}`;
  }
  el.className = `conn ${state}`;
  el.dataset.state = state;
  el.querySelector('.conn-state').textContent = t(`conn_${state}`);
  el.querySelector('.conn-detail').textContent = detail;
  const stale = state === 'reconnecting' || state === 'offline';
  document.body.classList.toggle('is-stale', stale);
  $('#stale').hidden = !stale;
  if (stale) {
    $('#stale').className = `stale-banner ${state}`;
    $('.stale-text').textContent = t('conn_stale_banner', { time: feed.lastUpdate ? localClock(feed.lastUpdate) : '—' });
  }
  products.renderStale();
  renderRecalc();
}

// ---------------------------------------------------------------- controls

$('#list-tabs').addEventListener('click', (event) => {
  const b = event.target.closest('[data-tab]');
  if (!b) return;
  ui.tab = b.dataset.tab;
  ui.selectedId = null;
  renderAlarms();
});
$('#product-filter').addEventListener('click', (event) => {
  const b = event.target.closest('[data-filter]');
  if (!b) return;
  ui.productId = b.dataset.filter === '' ? null : Number(b.dataset.filter);
  renderAlarms();
});
$('#btn-sort').addEventListener('click', () => {
  ui.sort = ui.sort === 'priority' ? 'newest' : 'priority';
  renderAlarms();
});
$('#btn-ack-all').addEventListener('click', () => {
  const visible = book.visible({ tab: ui.tab, productId: ui.productId, sort: ui.sort }).filter((a) => a.status === 'OPEN');
  if (visible.length) openAction('ack_all', visible);
});
$('#btn-act-ack').addEventListener('click', () => openAction('ack', [book.get(ui.selectedId)]));
$('#btn-act-shelve').addEventListener('click', () => openAction('shelve', [book.get(ui.selectedId)]));
$('#btn-act-resolve').addEventListener('click', () => openAction('resolve', [book.get(ui.selectedId)]));
$('#btn-act-comment').addEventListener('click', () => openAction('comment', [book.get(ui.selectedId)]));
$('#btn-act-unshelve').addEventListener('click', () => openAction('unshelve', [book.get(ui.selectedId)]));
$('#btn-recalc').addEventListener('click', () => {
  const product = products.products.get(products.productId);
  openAction.recalculate(product, products.characteristic, () => products.refresh());
});
$('#btn-act-chart').addEventListener('click', () => {
  const alert = book.get(ui.selectedId);
  if (alert) openChart(alert.product_id, alert.characteristic || null);
});
for (const b of document.querySelectorAll('.view-tab')) {
  b.addEventListener('click', () => {
    if (b.dataset.view === 'charts' && products.productId === null && products.products.size) {
      products.show([...products.products.keys()].sort((x, y) => x - y)[0], null);
    }
    showView(b.dataset.view);
  });
}
$('#btn-sound').addEventListener('click', () => {
  horn.enable();
  renderTools();
});
$('#btn-silence').addEventListener('click', () => horn.silence());
horn.addEventListener('change', () => renderTools());
$('#btn-lang').addEventListener('click', () => switchLanguage(language() === 'ko' ? 'en' : 'ko', true));
$('#btn-retry').addEventListener('click', () => {
  feed.reconnectNow();
  if (products.connection) products.connection.reconnectNow();
});

function tick() {
  $('#clock').textContent = localClock(new Date());
  renderConnection();
}
// Unacknowledged alarms flash together, on one clock, so an update never puts them out of step.
setInterval(() => document.body.classList.toggle('blink'), 500);
setInterval(tick, 1000);
setInterval(scheduleRender, 5000); // ages, shelve time left, the flood window

// ---------------------------------------------------------------- start

async function loadCatalog() {
  // Optional: the gateway's read API knows every product and its settings (spec, chart, min_cpk).
  try {
    const response = await fetch(`/api/spc/products/${token ? `?token=${encodeURIComponent(token)}` : ''}`, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    if (!response.ok) return;
    const body = await response.json();
    const list = Array.isArray(body) ? body : body.products || body.results || [];
    products.setCatalog(list);
    if (!storedLanguage() && (body.language === 'ko' || body.language === 'en') && !feed.connectionInfo) {
      switchLanguage(body.language, false);
    }
    restoreHash();
    scheduleRender();
  } catch {
    /* the page works without it: products are learnt from the feed */
  }
}

// A kiosk dedicated to one chart is started as /#charts/<product id>/<characteristic>.
let hashRestored = false;
function restoreHash() {
  if (hashRestored) return;
  const m = /^#charts\/(\d+)\/?(.*)$/.exec(location.hash);
  if (!m) {
    hashRestored = true;
    if (location.hash === '#charts') showView('charts');
    return;
  }
  if (!products.products.has(Number(m[1]))) return; // not known yet: try again when it is
  hashRestored = true;
  openChart(Number(m[1]), decodeURIComponent(m[2]) || null);
}

const outputLamps = new OutputLamps($('#tile-outputs'), $('#output-lamps'), token, () => feed.state === 'live');
setLanguage(storedLanguage() || 'ko');
renderAll();
tick();
feed.start();
outputLamps.start();
loadCatalog();
restoreHash();

// For tests and for a technician's console: the page's state, read-only by convention.
window.__hmi = { book, feed, products, horn, ui, outputLamps };
