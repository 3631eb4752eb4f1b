// Every text the operator sees, Korean and English side by side in one table.
// Placeholders are written {name} and filled by t(key, {name: value}).

export const TEXTS = {
  app_title: { ko: 'SPC 품질 경보', en: 'SPC quality alarms' },
  view_alarms: { ko: '경보', en: 'Alarms' },
  view_charts: { ko: '관리도', en: 'Charts' },
  lang_button: { ko: 'English', en: '한국어' },
  lang_button_title: { ko: '화면 언어를 영어로 바꿉니다', en: 'Switch the screen to Korean' },

  // connection state
  conn_connecting: { ko: '연결 중…', en: 'Connecting…' },
  conn_live: { ko: '실시간', en: 'LIVE' },
  conn_reconnecting: { ko: '재연결 중', en: 'Reconnecting' },
  conn_offline: { ko: '오프라인', en: 'OFFLINE' },
  conn_last_update: { ko: '마지막 수신 {time}', en: 'last update {time}' },
  conn_never: { ko: '수신 없음', en: 'no data yet' },
  conn_retry_in: { ko: '{s}초 후 재시도', en: 'retry in {s} s' },
  conn_retry_now: { ko: '지금 재연결', en: 'Reconnect now' },
  conn_stale_banner: {
    ko: '게이트웨이 연결이 끊겼습니다. 표시된 정보는 {time} 기준입니다.',
    en: 'Connection to the gateway is lost. What you see is as of {time}.',
  },
  conn_browser_offline: { ko: '네트워크 없음', en: 'no network' },
  conn_view_only: { ko: '조회 전용', en: 'view only' },

  // sound
  sound_enable: { ko: '경보음 켜기', en: 'Enable sound' },
  sound_on: { ko: '경보음 켜짐', en: 'Sound on' },
  sound_silence: { ko: '경보음 정지', en: 'Silence' },
  sound_silenced: { ko: '경보음 정지됨', en: 'Silenced' },

  // counts and list
  count_open: { ko: '미확인', en: 'Unacknowledged' },
  count_acknowledged: { ko: '확인됨', en: 'Acknowledged' },
  count_shelved: { ko: '보류', en: 'Shelved' },
  outputs_label: { ko: '안돈', en: 'Andon' },
  output_on: { ko: '켜짐', en: 'on' },
  output_off: { ko: '꺼짐', en: 'off' },
  output_unknown: { ko: '알 수 없음', en: 'unknown' },
  output_failing: { ko: '쓰기 실패', en: 'write failing' },
  count_resolved: { ko: '해결', en: 'Resolved' },
  flood: { ko: '경보 폭주', en: 'ALARM FLOOD' },
  flood_detail: { ko: '10분간 {n}건', en: '{n} in 10 min' },
  rate_detail: { ko: '최근 10분 경보', en: 'alarms in last 10 min' },
  tab_active: { ko: '활성', en: 'Active' },
  tab_shelved: { ko: '보류됨', en: 'Shelved' },
  tab_resolved: { ko: '해결됨', en: 'Resolved' },
  filter_all: { ko: '전체 제품', en: 'All products' },
  sort_priority: { ko: '우선순위순', en: 'Priority first' },
  sort_newest: { ko: '최신순', en: 'Newest first' },
  ack_all_visible: { ko: '보이는 경보 모두 확인 ({n})', en: 'Acknowledge all visible ({n})' },
  list_empty_active: { ko: '활성 경보가 없습니다', en: 'No active alarms' },
  list_empty_shelved: { ko: '보류된 경보가 없습니다', en: 'No shelved alarms' },
  list_empty_resolved: { ko: '해결된 경보가 없습니다', en: 'No resolved alarms' },
  list_empty_hint: { ko: '공정이 정상입니다', en: 'The process is in control' },

  // alert fields
  state_OPEN: { ko: '미확인', en: 'UNACK' },
  state_ACKNOWLEDGED: { ko: '확인됨', en: 'ACKED' },
  state_SHELVED: { ko: '보류', en: 'SHELVED' },
  state_RESOLVED: { ko: '해결', en: 'RESOLVED' },
  priority_5: { ko: '긴급', en: 'Critical' },
  priority_4: { ko: '높음', en: 'High' },
  priority_3: { ko: '보통', en: 'Medium' },
  priority_2: { ko: '낮음', en: 'Low' },
  priority_1: { ko: '정보', en: 'Info' },
  type_OUT_OF_SPEC: { ko: '규격 이탈', en: 'Out of spec' },
  type_OUT_OF_CONTROL: { ko: '관리한계 이탈', en: 'Out of control' },
  type_RUN_RULE_VIOLATION: { ko: '런 규칙 위반', en: 'Run rule violation' },
  type_CAPABILITY_LOW: { ko: '공정능력 부족', en: 'Low capability' },
  type_SOURCE_STALE: { ko: '계측 중단', en: 'Gauge silent' },
  type_STORAGE: { ko: '저장소', en: 'Storage' },
  type_OUTPUT_FAILED: { ko: '출력 실패', en: 'Output failed' },
  rule_n: { ko: '규칙 {n}', en: 'Rule {n}' },
  chart_named: { ko: '{name} 관리도', en: '{name} chart' },
  chart_location: { ko: '위치 관리도 (X̄/I)', en: 'Location chart (X̄/I)' },
  chart_dispersion: { ko: '산포 관리도 (R/S/MR)', en: 'Dispersion chart (R/S/MR)' },
  occurrences: { ko: '{n}회', en: '×{n}' },
  value_only: { ko: '값 {value}', en: 'value {value}' },
  value_limit: { ko: '값 {value} / 한계 {limit}', en: 'value {value} / limit {limit}' },
  acked_by: { ko: '{who} 확인 {time}', en: 'acked by {who} {time}' },
  shelved_until: { ko: '{time}까지 보류', en: 'shelved until {time}' },
  minutes_left: { ko: '{m}분 남음', en: '{m} min left' },
  ago_s: { ko: '{n}초 전', en: '{n} s ago' },
  ago_m: { ko: '{n}분 전', en: '{n} min ago' },
  ago_h: { ko: '{n}시간 전', en: '{n} h ago' },
  ago_d: { ko: '{n}일 전', en: '{n} d ago' },

  // actions
  act_ack: { ko: '확인', en: 'Ack' },
  act_acknowledge: { ko: '경보 확인', en: 'Acknowledge' },
  act_shelve: { ko: '보류', en: 'Shelve' },
  act_unshelve: { ko: '보류 해제', en: 'Unshelve' },
  act_resolve: { ko: '해결', en: 'Resolve' },
  act_comment: { ko: '메모', en: 'Comment' },
  act_save_comment: { ko: '메모 저장', en: 'Save comment' },
  act_chart: { ko: '관리도', en: 'Chart' },
  act_cancel: { ko: '취소', en: 'Cancel' },
  act_close: { ko: '닫기', en: 'Close' },
  act_recalculate: { ko: '한계 재계산', en: 'Recalculate limits' },
  select_hint: {
    ko: '경보를 선택한 뒤 확인·보류·해결·메모하세요',
    en: 'Tap an alarm, then acknowledge, shelve, resolve or comment',
  },
  dlg_ack_title: { ko: '경보 확인', en: 'Acknowledge alarm' },
  dlg_ack_all_title: { ko: '보이는 경보 {n}건 확인', en: 'Acknowledge {n} visible alarms' },
  dlg_shelve_title: { ko: '경보 보류', en: 'Shelve alarm' },
  dlg_resolve_title: { ko: '경보 해결', en: 'Resolve alarm' },
  dlg_comment_title: { ko: '경보에 메모 남기기', en: 'Comment on alarm' },
  dlg_unshelve_title: { ko: '경보 보류 해제', en: 'Unshelve alarm' },
  dlg_unshelve_note: {
    ko: '보류를 지금 끝냅니다. 경보는 보류 전 상태로 돌아가 모든 화면에 다시 보입니다.',
    en: 'Ends the shelve now. The alarm returns to the state it had and shows on every screen again.',
  },
  dlg_recalc_title: { ko: '관리한계 재계산', en: 'Recalculate control limits' },
  dlg_recalc_note: {
    ko: '최근 부분군으로 {characteristic}의 관리한계를 새로 계산합니다. 새 한계는 지금부터 적용되고, 이전 한계는 이력으로 남으며 지난 데이터는 다시 판정하지 않습니다. 공정이 의도적으로 바뀌고 검증된 경우에만 하십시오.',
    en: 'New control limits for {characteristic} from its latest subgroups. They apply from now on; the old limits stay in the history and past data is not judged again. Do this only after a deliberate, validated process change.',
  },
  field_subgroups: { ko: '사용할 부분군 수 (2–1000)', en: 'Subgroups to use (2–1000)' },
  field_recalc_reason: { ko: '재계산 사유 (무엇이 바뀌었나)', en: 'Reason (what changed)' },
  field_operator: { ko: '작업자 이름', en: 'Operator name' },
  field_comment: { ko: '메모 (선택)', en: 'Comment (optional)' },
  field_duration: { ko: '보류 시간 (최대 8시간)', en: 'Shelve for (at most 8 h)' },
  field_reason: { ko: '보류 사유', en: 'Reason' },
  field_cause: { ko: '원인', en: 'Cause' },
  field_action: { ko: '시정 조치 (선택)', en: 'Corrective action (optional)' },
  field_finding: { ko: '메모 (점검한 내용, 발견한 것)', en: 'Comment (what you checked, what you found)' },
  dur_15m: { ko: '15분', en: '15 min' },
  dur_30m: { ko: '30분', en: '30 min' },
  dur_1h: { ko: '1시간', en: '1 h' },
  dur_2h: { ko: '2시간', en: '2 h' },
  dur_4h: { ko: '4시간', en: '4 h' },
  dur_8h: { ko: '8시간', en: '8 h' },
  need_operator: { ko: '작업자 이름을 입력하세요', en: 'Enter the operator name' },
  need_reason: { ko: '보류 사유를 입력하세요', en: 'Enter the reason' },
  need_duration: { ko: '보류 시간을 고르세요', en: 'Choose how long' },
  need_cause: { ko: '원인을 입력하세요', en: 'Enter the cause' },
  need_comment: { ko: '메모를 입력하세요', en: 'Write the comment' },
  need_recalc_reason: { ko: '재계산 사유를 입력하세요', en: 'Enter the reason for the new limits' },
  need_subgroups: { ko: '부분군 수는 2부터 1000까지입니다', en: 'Subgroups: a whole number from 2 to 1000' },
  sending: { ko: '전송 중…', en: 'Sending…' },

  res_acknowledged: { ko: '경보 #{id} 확인됨 ({who})', en: 'Alarm #{id} acknowledged by {who}' },
  res_acknowledged_all: { ko: '{ok}/{n}건 확인됨', en: '{ok} of {n} acknowledged' },
  res_shelved: { ko: '경보 #{id} {time}까지 보류됨', en: 'Alarm #{id} shelved until {time}' },
  res_resolved: { ko: '경보 #{id} 해결됨', en: 'Alarm #{id} resolved' },
  res_commented: { ko: '경보 #{id}에 메모 저장됨', en: 'Comment saved on alarm #{id}' },
  res_unshelved: { ko: '경보 #{id} 보류 해제됨', en: 'Alarm #{id} unshelved' },
  res_recalculated: {
    ko: '{characteristic} 관리한계 {version}판: CL {center}, UCL {ucl}, LCL {lcl}',
    en: '{characteristic} control limits, version {version}: CL {center}, UCL {ucl}, LCL {lcl}',
  },
  err_recalc: { ko: '관리한계 재계산 실패 — {message}', en: 'Recalculating the limits failed — {message}' },
  err_action: { ko: '경보 #{id}: 실패 — {message}', en: 'Alarm #{id}: failed — {message}' },
  err_not_connected: {
    ko: '게이트웨이에 연결되어 있지 않아 보내지 못했습니다',
    en: 'Not sent: the gateway is not connected',
  },
  err_timeout: { ko: '게이트웨이가 10초 안에 응답하지 않았습니다', en: 'The gateway did not answer within 10 s' },
  err_some_failed: { ko: '{failed}건 실패: {message}', en: '{failed} failed: {message}' },

  // toasts
  toast_title: { ko: '품질 경고: {code}', en: 'Quality alert: {code}' },
  toast_more: { ko: '새 경보 {n}건 더', en: '{n} more new alarms' },

  // product view
  pv_choose: { ko: '제품을 고르세요', en: 'Choose a product' },
  pv_no_products: {
    ko: '아직 알려진 제품이 없습니다. 측정값이나 경보가 오면 나타납니다.',
    en: 'No products known yet. They appear as measurements or alarms arrive.',
  },
  pv_loading: { ko: '이력을 불러오는 중…', en: 'Loading history…' },
  pv_no_data: { ko: '아직 측정값이 없습니다', en: 'No measurements yet' },
  pv_location_imr: { ko: '개별값 (I)', en: 'Individuals (I)' },
  pv_location_xbar: { ko: '평균 (X̄)', en: 'Mean (X̄)' },
  pv_location_ewma: { ko: 'EWMA (지수가중 이동평균)', en: 'EWMA (weighted moving mean)' },
  pv_location_cusum: { ko: 'CUSUM (누적합 C+ · C−)', en: 'CUSUM (sums C+ · C−)' },
  pv_location_p: { ko: '불량률 (p)', en: 'Fraction defective (p)' },
  pv_location_np: { ko: '불량 개수 (np)', en: 'Defectives (np)' },
  pv_location_c: { ko: '결점 수 (c)', en: 'Defects (c)' },
  pv_location_u: { ko: '단위당 결점 수 (u)', en: 'Defects per unit (u)' },
  pv_location_laney_p: { ko: "불량률 (Laney p′)", en: "Fraction defective (Laney p′)" },
  pv_location_laney_u: { ko: "단위당 결점 수 (Laney u′)", en: "Defects per unit (Laney u′)" },
  pv_legend_ewma: { ko: '선: z · 흐린 점: 부분군 평균', en: 'line: z · faint: subgroup means' },
  pv_legend_cusum: { ko: '위: C+ · 아래: C− · H = {h}', en: 'above: C+ · below: C− · H = {h}' },
  pv_legend_attribute: { ko: '최근 표본 n = {n}', en: 'last sample n = {n}' },
  pv_dispersion_mr: { ko: '이동범위 (MR)', en: 'Moving range (MR)' },
  pv_dispersion_r: { ko: '범위 (R)', en: 'Range (R)' },
  pv_dispersion_s: { ko: '표준편차 (S)', en: 'Std. deviation (S)' },
  pv_last_value: { ko: '최근 측정값', en: 'Last measurement' },
  pv_capability: { ko: '공정능력', en: 'Capability' },
  pv_min_cpk: { ko: '기준 Cpk ≥ {v}', en: 'target Cpk ≥ {v}' },
  pv_cap_waiting: { ko: '분석 대기 중', en: 'awaiting analysis' },
  pv_cap_n: { ko: 'n = {n} · {time}', en: 'n = {n} · {time}' },
  pv_limits: { ko: '한계', en: 'Limits' },
  pv_violations: { ko: '최근 규칙 위반', en: 'Recent rule violations' },
  pv_no_violations: { ko: '위반 없음', en: 'None' },
  pv_subgroup: { ko: '부분군 {n}', en: 'Subgroup {n}' },
  pv_still_holds: { ko: '{n}점째 계속', en: 'still holds, {n} points' },
  pv_points: { ko: '{n}점', en: '{n} points' },
  pv_spec: { ko: '규격', en: 'Spec' },
  pv_in_spec: { ko: '규격 내', en: 'in spec' },
  pv_out_spec: { ko: '규격 외', en: 'OUT OF SPEC' },
  pv_out_control: { ko: '관리한계 외', en: 'OUT OF CONTROL' },
  pv_in_control: { ko: '관리 상태', en: 'in control' },
  pv_hist: { ko: '분포 · {name} 적합', en: 'Distribution · {name} fit' },
  pv_hist_ppm: { ko: '예상 {ppm} ppm', en: 'expected {ppm} ppm' },
  dist_normal: { ko: '정규', en: 'normal' },
  dist_lognormal: { ko: '로그정규', en: 'lognormal' },
  dist_weibull: { ko: '와이블', en: 'Weibull' },
  dist_folded_normal: { ko: '접힌 정규', en: 'folded normal' },
  pv_cap_rate_p: { ko: '불량률', en: 'fraction defective' },
  pv_cap_rate_u: { ko: '단위당 결점 수', en: 'defects per unit' },
  cap_process_z: { ko: '공정 Z', en: 'Process Z' },
  cap_ok: { ko: '양호', en: 'OK' },
  cap_warn: { ko: '주의', en: 'Low' },
  cap_bad: { ko: '불량', en: 'Poor' },

  rule_name_1: { ko: '관리한계 밖', en: 'Beyond a control limit' },
  rule_name_2: { ko: '9점 한쪽', en: '9 points on one side' },
  rule_name_3: { ko: '6점 연속 증가/감소', en: '6 points trending' },
  rule_name_4: { ko: '14점 교대', en: '14 points alternating' },
  rule_name_5: { ko: '3점 중 2점 2σ 밖', en: '2 of 3 beyond 2σ' },
  rule_name_6: { ko: '5점 중 4점 1σ 밖', en: '4 of 5 beyond 1σ' },
  rule_name_7: { ko: '15점 1σ 안', en: '15 points within 1σ' },
  rule_name_8: { ko: '8점 1σ 밖', en: '8 points beyond 1σ' },
};

const LANGUAGES = ['ko', 'en'];
let current = 'ko';

/** The text for key in the current language, with {placeholders} filled in. */
export function t(key, vars = {}) {
  const entry = TEXTS[key];
  if (!entry) return key;
  const text = entry[current] ?? entry.en;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** The current language code. */
export function language() {
  return current;
}

/** Switch language; returns true when it changed. */
export function setLanguage(code) {
  if (!LANGUAGES.includes(code) || code === current) return false;
  current = code;
  document.documentElement.lang = code;
  return true;
}

/** Fill every element marked data-i18n / data-i18n-title / data-i18n-placeholder under root. */
export function applyTexts(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}
