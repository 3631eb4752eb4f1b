// Acknowledge / shelve / unshelve / resolve / comment forms, the confirmation before new control limits, and
// the strip that reports the result of every action.
import { t } from './i18n.js';
import { esc } from './format.js';
import { alertText, priorityBadge } from './alerts.js';

export const MAX_SHELVE_S = 8 * 3600; // the contract's limit
export const SHELVE_DURATIONS = [
  ['dur_15m', 900],
  ['dur_30m', 1800],
  ['dur_1h', 3600],
  ['dur_2h', 7200],
  ['dur_4h', 14400],
  ['dur_8h', MAX_SHELVE_S],
];
const MAX_TEXT = 500; // characters of a comment, reason, cause or action

/** The operator's name is remembered per screen (a kiosk is usually one station). */
function operatorKey() {
  const screen = new URLSearchParams(location.search).get('screen') || 'default';
  return `spc-hmi:${screen}:operator`;
}

export function rememberedOperator() {
  try {
    return localStorage.getItem(operatorKey()) || '';
  } catch {
    return '';
  }
}

function rememberOperator(name) {
  try {
    localStorage.setItem(operatorKey(), name);
  } catch {
    /* private mode: the name is simply not remembered */
  }
}

export class ActionDialog {
  constructor(root) {
    this.root = root;
    this.form = root.querySelector('form');
    this.body = root.querySelector('.modal-body');
    this.error = root.querySelector('.modal-error');
    this.ok = root.querySelector('.modal-ok');
    this.cancel = root.querySelector('.modal-cancel');
    this.current = null;
    this.cancel.addEventListener('click', () => this.close());
    root.addEventListener('click', (event) => {
      if (event.target === root) this.close();
    });
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !root.hidden) this.close();
    });
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this._submit();
    });
    // A message about a missing field goes away as soon as the operator fills something in.
    this.body.addEventListener('input', () => {
      if (!this.ok.disabled) this.error.textContent = '';
    });
    this.body.addEventListener('click', (event) => {
      const choice = event.target.closest('button[data-duration]');
      if (!choice) return;
      if (!this.ok.disabled) this.error.textContent = '';
      for (const b of this.body.querySelectorAll('button[data-duration]')) b.setAttribute('aria-pressed', 'false');
      choice.setAttribute('aria-pressed', 'true');
    });
  }

  get isOpen() {
    return !this.root.hidden;
  }

  /** Open a form. kind: ack | ack_all | shelve | unshelve | resolve | comment | recalc; submit(fields) does
   * the work and may throw. `subject` names what a form without an alert is about (recalc: the chart). */
  open(kind, alerts, submit, { subject = null } = {}) {
    this.current = { kind, alerts, submit, subject };
    const title = {
      ack: t('dlg_ack_title'),
      ack_all: t('dlg_ack_all_title', { n: alerts.length }),
      shelve: t('dlg_shelve_title'),
      unshelve: t('dlg_unshelve_title'),
      resolve: t('dlg_resolve_title'),
      comment: t('dlg_comment_title'),
      recalc: t('dlg_recalc_title'),
    }[kind];
    this.root.querySelector('.modal-title').textContent = title;
    this.root.querySelector('.modal-subject').innerHTML = subject
      ? `<span class="code">${esc(subject.code)}</span><span>${esc(subject.characteristic)}</span>`
      : this._subject(alerts);
    this.body.innerHTML = this._fields(kind, subject);
    this.ok.textContent = {
      ack: t('act_acknowledge'), ack_all: t('act_acknowledge'), shelve: t('act_shelve'), unshelve: t('act_unshelve'),
      resolve: t('act_resolve'), comment: t('act_save_comment'), recalc: t('act_recalculate'),
    }[kind];
    const style = { resolve: 'btn-resolve', shelve: 'btn-shelve', unshelve: 'btn-shelve', recalc: 'btn-warn' }[kind];
    this.ok.className = `btn modal-ok ${style || 'btn-primary'}`;
    this.cancel.textContent = t('act_cancel');
    this.error.textContent = '';
    this.ok.disabled = false;
    this.root.hidden = false;
    const operator = this.form.elements.operator;
    operator.value = rememberedOperator();
    const first = operator.value ? this.body.querySelector('textarea, button[data-duration]') : operator;
    (first || operator).focus();
  }

  close() {
    this.root.hidden = true;
    this.current = null;
  }

  _subject(alerts) {
    if (alerts.length !== 1) return '';
    const a = alerts[0];
    return `${priorityBadge(a.priority)}<span class="code">${esc(a.product_code ?? '')}</span>
      <span>${esc(alertText(a, 'title'))}</span><span class="aid">#${esc(a.id)}</span>`;
  }

  _fields(kind, subject) {
    const text = (name, label, rows = 2) =>
      `<label class="field"><span>${esc(t(label))}</span><textarea name="${name}" rows="${rows}" maxlength="${MAX_TEXT}"></textarea></label>`;
    const operator = `<label class="field"><span>${esc(t('field_operator'))}</span>
      <input name="operator" autocomplete="off" maxlength="80" spellcheck="false"></label>`;
    if (kind === 'ack' || kind === 'ack_all') return operator + text('comment', 'field_comment');
    if (kind === 'comment') return operator + text('comment', 'field_finding', 4);
    if (kind === 'unshelve') return `<p class="modal-note">${esc(t('dlg_unshelve_note'))}</p>${operator}`;
    if (kind === 'recalc') {
      // A confirmation first: new limits change what every later point is judged against.
      return `<p class="modal-note warn">${esc(t('dlg_recalc_note', { characteristic: subject?.characteristic ?? '' }))}</p>
        ${operator}<label class="field"><span>${esc(t('field_subgroups'))}</span>
        <input name="subgroups" type="number" inputmode="numeric" min="2" max="1000" step="1" value="25"></label>
        ${text('reason', 'field_recalc_reason')}`;
    }
    if (kind === 'shelve') {
      const choices = SHELVE_DURATIONS.map(
        ([label, seconds]) => `<button type="button" class="btn choice" data-duration="${seconds}" aria-pressed="false">${esc(t(label))}</button>`,
      ).join('');
      return `${operator}<div class="field"><span>${esc(t('field_duration'))}</span><div class="choices">${choices}</div></div>${text('reason', 'field_reason')}`;
    }
    return operator + text('cause', 'field_cause') + text('action', 'field_action');
  }

  async _submit() {
    if (!this.current) return;
    const { kind, submit } = this.current;
    const f = this.form.elements;
    const value = (name) => (f[name] ? f[name].value.trim() : '');
    const fields = { user: value('operator') };
    let problem = null;
    if (!fields.user) problem = 'need_operator';
    if (kind === 'ack' || kind === 'ack_all') {
      if (value('comment')) fields.comment = value('comment');
    } else if (kind === 'shelve') {
      const chosen = this.body.querySelector('button[data-duration][aria-pressed="true"]');
      fields.reason = value('reason');
      if (!chosen) problem = problem || 'need_duration';
      else fields.duration_s = Math.min(MAX_SHELVE_S, Number(chosen.dataset.duration));
      if (!fields.reason) problem = problem || 'need_reason';
    } else if (kind === 'comment') {
      fields.comment = value('comment');
      if (!fields.comment) problem = problem || 'need_comment';
    } else if (kind === 'recalc') {
      const subgroups = Number(value('subgroups'));
      fields.reason = value('reason');
      if (!Number.isInteger(subgroups) || subgroups < 2 || subgroups > 1000) problem = problem || 'need_subgroups';
      else fields.subgroups = subgroups;
      if (!fields.reason) problem = problem || 'need_recalc_reason';
    } else if (kind === 'resolve') {
      fields.cause = value('cause');
      if (value('action')) fields.action = value('action');
      if (!fields.cause) problem = problem || 'need_cause';
    }
    if (problem) {
      this.error.textContent = t(problem);
      return;
    }
    rememberOperator(fields.user);
    this.ok.disabled = true;
    this.error.textContent = t('sending');
    try {
      await submit(fields);
      this.close();
    } catch (err) {
      this.error.textContent = err.message;
      this.ok.disabled = false;
    }
  }
}

/** The strip under the header that says what became of the last action. */
export class Feedback {
  constructor(el) {
    this.el = el;
    this.timer = null;
    el.addEventListener('click', () => this.clear());
  }

  show(text, kind = 'ok') {
    clearTimeout(this.timer);
    this.el.className = `feedback ${kind}`;
    this.el.innerHTML = `<span class="fb-icon">${kind === 'ok' ? '✓' : '✕'}</span><span class="fb-text">${esc(text)}</span>`;
    this.el.hidden = false;
    // Errors stay longer: the operator has to read and act on them.
    this.timer = setTimeout(() => this.clear(), kind === 'ok' ? 6000 : 20000);
  }

  clear() {
    clearTimeout(this.timer);
    this.el.hidden = true;
  }
}
