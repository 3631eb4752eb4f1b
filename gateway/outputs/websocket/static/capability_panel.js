// The capability panel of the product view. Measured values: Cp, Cpk, Pp, Ppk against the target Cpk.
// Attribute charts: the rate, p-bar with ppm and process Z (fraction defective) or u-bar with DPU
// (defects per unit), since counts have no spread to hold against a spec. The panel reads the latest
// `capability` event or, after a reload until the next analysis, the stored result the page fetched
// (GET /api/spc/products/{id}/capability/): both carry these fields under the same names.
import { t } from './i18n.js';
import { esc, clockTime, num } from './format.js';

const known = (value) => value !== null && value !== undefined && value !== '' && Number.isFinite(Number(value));

/** Parts per million expected out of spec in all (`expected_ppm`: {below, above, total}), or null. */
export function expectedPpm(cap) {
  const total = cap?.expected_ppm?.total;
  return known(total) ? Number(total) : null;
}

function ppmText(value) {
  // a rate of defectives is a whole number of ppm once it is large; grouping keeps its digits readable
  return Number(value) >= 1000 ? Math.round(Number(value)).toLocaleString('en-US') : num(value);
}

function indexTile(label, value, minCpk) {
  const v = Number(value);
  const level = !known(value) ? 'none' : v >= minCpk ? 'ok' : v >= 1 ? 'warn' : 'bad';
  const mark = { ok: '✓', warn: '!', bad: '✕', none: '' }[level];
  const word = { ok: t('cap_ok'), warn: t('cap_warn'), bad: t('cap_bad'), none: '' }[level];
  return `<div class="cap-tile ${level}" data-index="${label}"><small>${label}</small><span>${mark} ${esc(word)}</span><b>${known(value) ? v.toFixed(2) : '—'}</b></div>`;
}

function rateTile(field, label, text, wide = false) {
  // no verdict: a rate has no target here (min_cpk is for indices)
  return `<div class="cap-tile rate${wide ? ' wide' : ''}" data-index="${field}"><small>${esc(label)}</small><span></span><b>${esc(text)}</b></div>`;
}

/**
 * The panel's HTML. rate: 'p' (p-bar, ppm, process Z), 'u' (u-bar, DPU) for an attribute chart, else null;
 * an attribute chart of unknown type goes by what the result carries.
 */
export function capabilityPanel(cap, { attribute, rate, minCpk }) {
  const footer = `<small class="muted">${cap ? esc(t('pv_cap_n', { n: cap.n ?? '—', time: clockTime(cap.analyzed_at) })) : esc(t('pv_cap_waiting'))}</small>`;
  if (attribute) {
    const kind = rate || (known(cap?.u_bar) && !known(cap?.p_bar) ? 'u' : 'p');
    const value = (field, digits = 4) => (known(cap?.[field]) ? num(cap[field], digits) : '—');
    const tiles = kind === 'p'
      // ppm has the most digits (up to 1,000,000): the whole row
      ? rateTile('p_bar', 'p̄', value('p_bar'))
        + rateTile('process_z', t('cap_process_z'), known(cap?.process_z) ? Number(cap.process_z).toFixed(2) : '—')
        + rateTile('ppm', 'ppm', known(cap?.ppm) ? ppmText(cap.ppm) : '—', true)
      : rateTile('u_bar', 'ū', value('u_bar')) + rateTile('dpu', 'DPU', value('dpu'));
    return `<h4>${esc(t('pv_capability'))}<small>${esc(t(`pv_cap_rate_${kind}`))}</small></h4>
      <div class="cap-grid">${tiles}</div>${footer}`;
  }
  return `<h4>${esc(t('pv_capability'))}<small>${esc(t('pv_min_cpk', { v: minCpk.toFixed(2) }))}</small></h4>
      <div class="cap-grid">${indexTile('Cp', cap?.cp, minCpk)}${indexTile('Cpk', cap?.cpk, minCpk)}${indexTile('Pp', cap?.pp, minCpk)}${indexTile('Ppk', cap?.ppk, minCpk)}</div>${footer}`;
}

/** The histogram title's `expected {ppm} ppm`, or '' without one. */
export function ppmNote(cap) {
  const ppm = expectedPpm(cap);
  return ppm === null ? '' : t('pv_hist_ppm', { ppm: num(ppm) });
}
