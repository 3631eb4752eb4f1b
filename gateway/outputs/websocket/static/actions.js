// Operator actions on alerts: acknowledge (one or all visible), shelve, unshelve, resolve, comment; and
// recalculating a chart's control limits. Every action's result or error is reported in the feedback
// strip; an error also stays in the open dialog.
import { t, language } from './i18n.js';
import { num } from './format.js';

const ACK_ALL_PACING_MS = 60; // stays under the gateway's per-connection command rate

/** Returns openAction(kind, alerts) bound to the page's connection, alarm book and dialog. */
export function actionOpener({ feed, book, dialog, feedback, ui }) {
  function describeError(err) {
    if (err.code === 'not_connected') return t('err_not_connected');
    if (err.code === 'timeout') return t('err_timeout');
    return err.texts?.[language()]?.message || err.message || String(err.code);
  }

  async function command(message) {
    const reply = await feed.request(message);
    const changed = reply.alert || (reply.id !== undefined ? reply : null);
    if (changed && changed.id !== undefined) book.upsert(changed);
    return reply;
  }

  function openAction(kind, alerts) {
    alerts = alerts.filter(Boolean);
    if (!alerts.length || ui.role === 'viewer') return;
    dialog.open(kind, alerts, async (fields) => {
      if (kind === 'ack_all') return ackAll(alerts, fields);
      const alert = alerts[0];
      const type = {
        ack: 'acknowledge_alert', shelve: 'shelve_alert', unshelve: 'unshelve_alert', resolve: 'resolve_alert',
        comment: 'comment_alert',
      }[kind];
      try {
        const reply = await command({ type, alert_id: alert.id, ...fields });
        const updated = book.get(alert.id) || alert;
        const text = {
          ack: () => t('res_acknowledged', { id: alert.id, who: fields.user }),
          shelve: () => t('res_shelved', { id: alert.id, time: (reply.alert?.shelved_until || updated.shelved_until || '').slice(11, 16) }),
          unshelve: () => t('res_unshelved', { id: alert.id }),
          resolve: () => t('res_resolved', { id: alert.id }),
          comment: () => t('res_commented', { id: alert.id }),
        }[kind]();
        feedback.show(text, 'ok');
      } catch (err) {
        const text = t('err_action', { id: alert.id, message: describeError(err) });
        feedback.show(text, 'error');
        throw new Error(text);
      }
    });
  }

  async function ackAll(alerts, fields) {
    let ok = 0;
    const failures = [];
    for (const alert of alerts) {
      try {
        await command({ type: 'acknowledge_alert', alert_id: alert.id, ...fields });
        ok += 1;
      } catch (err) {
        failures.push(`#${alert.id}: ${describeError(err)}`);
        if (err.code === 'not_connected') break;
      }
      if (alerts.length > 30) await new Promise((resolve) => setTimeout(resolve, ACK_ALL_PACING_MS));
    }
    if (failures.length) {
      const text = `${t('res_acknowledged_all', { ok, n: alerts.length })} · ${t('err_some_failed', { failed: failures.length, message: failures.slice(0, 3).join('; ') })}`;
      feedback.show(text, 'error');
      if (ok === 0) throw new Error(text);
    } else {
      feedback.show(t('res_acknowledged_all', { ok, n: alerts.length }), 'ok');
    }
  }

  /** The confirmation and the `recalculate_limits` command for one chart; then(limits) refreshes it. */
  function openRecalculate(product, characteristic, then) {
    if (ui.role === 'viewer' || !product || !characteristic) return;
    const subject = { code: product.code, characteristic };
    dialog.open('recalc', [], async (fields) => {
      try {
        const reply = await feed.request({ type: 'recalculate_limits', product_id: product.id, characteristic, ...fields });
        const l = reply.limits || {};
        feedback.show(t('res_recalculated', { characteristic, version: l.version ?? '?', center: num(l.center), ucl: num(l.ucl), lcl: num(l.lcl) }), 'ok');
        then?.(l);
      } catch (err) {
        const text = t('err_recalc', { message: describeError(err) });
        feedback.show(text, 'error');
        throw new Error(text);
      }
    }, { subject });
  }

  openAction.recalculate = openRecalculate;
  return openAction;
}
