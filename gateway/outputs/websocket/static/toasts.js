// Toasts for new alerts, as the seed's RealtimeNotifications does: title "품질 경고: {product_code}".
import { t } from './i18n.js';
import { esc, clockTime } from './format.js';
import { alertText, priorityBadge, priorityLevel } from './alerts.js';

export const MAX_TOASTS = 3; // on screen at once; older ones make room
// The list keeps every alert; a toast only has to catch the eye, so it does not linger.
const SHOW_MS = { 5: 15000, 4: 10000, 3: 8000, 2: 6000, 1: 6000 };

export class Toaster {
  constructor(container, { onOpen }) {
    this.container = container;
    this.onOpen = onOpen;
    this.overflow = 0;
    container.addEventListener('click', (event) => {
      const toast = event.target.closest('.toast');
      if (!toast) return;
      if (toast.dataset.id && !event.target.closest('.toast-close')) this.onOpen(toast.dataset.id);
      this._remove(toast);
    });
  }

  /** Show a toast for a new alert. */
  alert(alert) {
    const p = priorityLevel(alert.priority);
    const el = document.createElement('div');
    el.className = `toast p${p}`;
    el.dataset.id = String(alert.id);
    el.setAttribute('role', 'alert');
    el.innerHTML = `${priorityBadge(p)}
      <div class="toast-body">
        <div class="toast-title">${esc(t('toast_title', { code: alert.product_code ?? '' }))}</div>
        <div class="toast-msg">${esc(alertText(alert, 'message') || alertText(alert, 'title'))}</div>
        <div class="toast-time">${esc(clockTime(alert.created_at))} · ${esc(alertText(alert, 'title'))}</div>
      </div>
      <button class="toast-close" aria-label="${esc(t('act_close'))}">✕</button>`;
    // Newest at the bottom, nearest the operator's hands; the oldest make room at the top.
    this.container.append(el);
    el.timer = setTimeout(() => this._remove(el), SHOW_MS[p]);
    const toasts = [...this.container.querySelectorAll('.toast:not(.summary)')];
    for (const old of toasts.slice(0, Math.max(0, toasts.length - MAX_TOASTS))) {
      this._remove(old);
      this.overflow += 1;
    }
    this._summary();
  }

  _summary() {
    let summary = this.container.querySelector('.toast.summary');
    if (this.overflow === 0) {
      if (summary) summary.remove();
      return;
    }
    if (!summary) {
      summary = document.createElement('div');
      summary.className = 'toast summary';
      this.container.prepend(summary);
    }
    summary.textContent = t('toast_more', { n: this.overflow });
    clearTimeout(summary.timer);
    summary.timer = setTimeout(() => {
      this.overflow = 0;
      summary.remove();
    }, 10000);
  }

  _remove(el) {
    clearTimeout(el.timer);
    if (el.classList.contains('summary')) this.overflow = 0;
    el.remove();
  }
}
