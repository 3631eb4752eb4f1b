"""Texts the gateway itself says to people: server messages and alert titles, in Korean and English.

The language is `gateway.language` of the config; alerts the gateway raises also carry their title and
message in every language (`texts`), so a screen switched to the other language shows them in it, and
so do `error` replies (`texts`: {language: {message}}), so an English CLI or screen never prints a
Korean refusal. Every part of a message is worded in its own language: `texts()` fills a value that is
itself per language (a dict of languages, or a callable of the language) language by language. A
missing key is a programming error and fails loudly in tests; a missing placeholder value likewise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Language = Literal["ko", "en"]
LANGUAGES: tuple[Language, ...] = ("ko", "en")  # every text below has both

_TEXTS: dict[str, dict[str, str]] = {
    # ------------------------------------------------------------------ connection and errors
    "connection": {
        "ko": "SPC 실시간 알림에 연결되었습니다",
        "en": "Connected to SPC real-time notifications",
    },
    "error.invalid_json": {
        "ko": "JSON 객체가 아닙니다: {detail}",
        "en": "not a JSON object: {detail}",
    },
    "error.json_syntax": {
        "ko": "JSON으로 읽을 수 없습니다 ({line}행 {column}열)",
        "en": "not JSON: {detail}",
    },
    "error.json_deep": {
        "ko": "JSON이 너무 깊게 중첩되어 있습니다",
        "en": "not JSON: nested too deeply",
    },
    "error.binary": {
        "ko": "바이너리 프레임은 받지 않습니다. JSON 텍스트를 보내십시오",
        "en": "binary frames are not accepted; send JSON text",
    },
    "error.unknown_type": {
        "ko": "알 수 없는 메시지 유형 {type!r} (가능: {allowed})",
        "en": "unknown message type {type!r} (allowed: {allowed})",
    },
    "error.missing": {
        "ko": "필드 {field!r}가 필요합니다 ({expected})",
        "en": "field {field!r} is required ({expected})",
    },
    "error.wrong": {
        "ko": "필드 {field!r}가 잘못되었습니다 (허용: {expected})",
        "en": "field {field!r} is wrong: it must be {expected}",
    },
    "error.too_long": {
        "ko": "필드 {field!r}가 너무 깁니다 ({length}자, 최대 {limit}자)",
        "en": "field {field!r} is too long ({length} characters, at most {limit})",
    },
    "error.no_product": {
        "ko": "제품 {product_id}이(가) 없습니다",
        "en": "there is no product {product_id}",
    },
    "error.no_characteristic": {
        "ko": "제품 {product_id}에 특성 {characteristic!r}이(가) 없습니다",
        "en": "product {product_id} has no characteristic {characteristic!r}",
    },
    "error.no_alert": {
        "ko": "경고 {alert_id}이(가) 없습니다",
        "en": "there is no alert {alert_id}",
    },
    "error.unauthorized": {
        "ko": "{role} 권한으로는 {type}을(를) 할 수 없습니다 (operator 권한 필요)",
        "en": "the {role} role may not {type} (operator role needed)",
    },
    "error.rate_limited": {
        "ko": "명령이 너무 많습니다 (초당 {rate:g}개까지). 잠시 후 다시 시도하십시오",
        "en": "too many commands (at most {rate:g} per second); try again shortly",
    },
    "error.state": {
        "ko": "경고 {alert_id}은(는) {status} 상태라서 {action}할 수 없습니다",
        "en": "alert {alert_id} is {status}; it cannot be {action}",
    },
    "error.storage_unavailable": {
        "ko": "데이터베이스에 쓸 수 없어 처리하지 않았습니다 (아무것도 바뀌지 않았습니다). 저장소가 복구된 뒤 다시 "
              "시도하십시오",
        "en": "not done: the database cannot be written (nothing was changed); try again once storage works",
    },
    "error.failed": {
        "ko": "처리하지 못했습니다: {detail}",
        "en": "could not be done: {detail}",
    },
    "error.bad_character": {
        "ko": "필드 {field!r}에 허용되지 않는 문자 {char}가 있습니다 (제어 문자와 방향 제어 문자는 쓸 수 없습니다)",
        "en": "field {field!r} contains a character that is not allowed: {char} (no control or bidi control "
              "characters)",
    },
    "error.bad_character_lines": {
        "ko": "필드 {field!r}에 허용되지 않는 문자 {char}가 있습니다 (줄바꿈과 탭 외의 제어 문자와 방향 제어 문자는 "
              "쓸 수 없습니다)",
        "en": "field {field!r} contains a character that is not allowed: {char} (no control or bidi control "
              "characters other than newline and tab)",
    },
    "error.gateway_type": {
        "ko": "{alert_type} 경고는 게이트웨이가 직접 발생시킵니다. 만들 수 있는 유형: {allowed}",
        "en": "{alert_type} alerts are raised by the gateway itself; alert types you may create: {allowed}",
    },
    # ------------------------------------------------------------------ alert titles and messages
    "alert.OUT_OF_SPEC.title": {"ko": "규격 이탈", "en": "Out of specification"},
    "alert.OUT_OF_SPEC.upper": {
        "ko": "측정값이 상한 규격을 초과했습니다 ({characteristic}: {value} > {limit} {unit})",
        "en": "The measured value exceeds the upper specification limit ({characteristic}: {value} > {limit} {unit})",
    },
    "alert.OUT_OF_SPEC.lower": {
        "ko": "측정값이 하한 규격 미만입니다 ({characteristic}: {value} < {limit} {unit})",
        "en": "The measured value is below the lower specification limit ({characteristic}: {value} < {limit} {unit})",
    },
    "alert.OUT_OF_CONTROL.title": {"ko": "관리한계 이탈", "en": "Out of control"},
    "alert.OUT_OF_CONTROL.upper": {
        "ko": "관리도 점이 관리 상한을 벗어났습니다 ({characteristic}: {value} > UCL {limit})",
        "en": "The charted point is above the upper control limit ({characteristic}: {value} > UCL {limit})",
    },
    "alert.OUT_OF_CONTROL.lower": {
        "ko": "관리도 점이 관리 하한을 벗어났습니다 ({characteristic}: {value} < LCL {limit})",
        "en": "The charted point is below the lower control limit ({characteristic}: {value} < LCL {limit})",
    },
    "alert.OUT_OF_CONTROL.dispersion": {
        "ko": "산포 관리도 점이 관리한계를 벗어났습니다 ({characteristic}: {value}, 한계 {limit})",
        "en": "The dispersion chart point is beyond its control limit ({characteristic}: {value}, limit {limit})",
    },
    # EWMA and CUSUM signals (gateway.alerts.signals): what the signal means, then the numbers
    "alert.OUT_OF_CONTROL.ewma_upper": {
        "ko": "EWMA 관리 상한 초과: 평균이 서서히 위로 이동하고 있습니다 ({characteristic}: EWMA {value} > UCL {limit})",
        "en": "EWMA beyond UCL: slow drift upward ({characteristic}: EWMA {value} > UCL {limit})",
    },
    "alert.OUT_OF_CONTROL.ewma_lower": {
        "ko": "EWMA 관리 하한 미만: 평균이 서서히 아래로 이동하고 있습니다 ({characteristic}: EWMA {value} < LCL {limit})",
        "en": "EWMA beyond LCL: slow drift downward ({characteristic}: EWMA {value} < LCL {limit})",
    },
    "alert.OUT_OF_CONTROL.cusum_upper": {
        "ko": "CUSUM 상향 이동 감지: 평균이 약 {shift}σ 이동 ({run}점 전부터) ({characteristic}: 추정 평균 {mean} {unit}, "
              "C+ {value} > H {limit})",
        "en": "CUSUM upward shift: mean moved about {shift} σ, starting {run} points ago ({characteristic}: estimated "
              "mean {mean} {unit}, C+ {value} > H {limit})",
    },
    "alert.OUT_OF_CONTROL.cusum_lower": {
        "ko": "CUSUM 하향 이동 감지: 평균이 약 {shift}σ 이동 ({run}점 전부터) ({characteristic}: 추정 평균 {mean} {unit}, "
              "C- {value} > H {limit})",
        "en": "CUSUM downward shift: mean moved about {shift} σ, starting {run} points ago ({characteristic}: "
              "estimated mean {mean} {unit}, C- {value} > H {limit})",
    },
    # one term per language everywhere (page, alerts, docs): 런 규칙 위반 / run rule violation
    "alert.RUN_RULE_VIOLATION.title": {"ko": "런 규칙 위반 (규칙 {rule})", "en": "Run rule violation (rule {rule})"},
    "alert.RUN_RULE_VIOLATION.message": {
        "ko": "{characteristic}: {description} (부분군 {points})",
        "en": "{characteristic}: {description} (subgroups {points})",
    },
    "alert.CAPABILITY_LOW.title": {"ko": "공정능력 부족", "en": "Process capability low"},
    "alert.CAPABILITY_LOW.message": {
        "ko": "{characteristic}: Cpk {cpk}가 기준 {min_cpk}보다 낮습니다",
        "en": "{characteristic}: Cpk {cpk} is below the required {min_cpk}",
    },
    "alert.SOURCE_STALE.title": {"ko": "측정값 수신 중단", "en": "No measurements arriving"},
    "alert.SOURCE_STALE.message": {
        "ko": "{characteristic}: {age}초 동안 새 측정값이 없습니다 (소스 {source})",
        "en": "{characteristic}: no new value for {age} s (source {source})",
    },
    "alert.SOURCE_STALE.fresh": {
        "ko": "측정값이 다시 들어옵니다",
        "en": "values arrive again",
    },
    "alert.STORAGE.title": {"ko": "저장소 문제", "en": "Storage problem"},
    "alert.STORAGE.store_failing": {
        "ko": "데이터베이스에 쓰지 못하고 있습니다 ({error}). 측정값은 메모리에 두고 다시 시도합니다. 디스크를 확인하세요",
        "en": "The database cannot be written ({error}). Readings are kept in memory and retried: check the disk",
    },
    "alert.STORAGE.store_lost": {
        "ko": "데이터베이스 파일이 삭제되었거나 다른 파일로 바뀌었습니다 ({error}). 아무것도 저장되지 않습니다. "
              "spc-gateway 를 다시 시작하세요",
        "en": "The database file was deleted or replaced ({error}). Nothing is stored: restart spc-gateway",
    },
    "alert.STORAGE.outbox_high": {
        "ko": "MQTT 전송 대기열이 한도의 {fill}입니다 ({depth}건, {size} / {limit}). 플랜트 브로커 연결을 확인하세요",
        "en": "MQTT outbox at {fill} of its limit ({depth} messages, {size} / {limit}). Check the plant broker "
              "connection",
    },
    "alert.STORAGE.outbox_dropped": {
        "ko": "MQTT 전송 대기열이 한도({limit})를 넘어 가장 오래된 측정값 {n}건을 버렸습니다. 플랜트 브로커 연결을 "
              "확인하세요",
        "en": "MQTT outbox over its limit ({limit}): dropped the {n} oldest measurements. Check the plant broker "
              "connection",
    },
    "alert.OUTPUT_FAILED.title": {"ko": "출력 쓰기 실패", "en": "Output cannot be written"},
    "alert.OUTPUT_FAILED.message": {
        "ko": "출력 {output}을(를) 소스 {source}에 {failures}번 연속 쓰지 못했습니다 ({error}). 안돈/인터록이 "
              "알람을 표시하지 않을 수 있습니다. PLC와 연결을 확인하세요",
        "en": "Output {output} could not be written to source {source} {failures} times in a row ({error}). "
              "The andon or interlock may not show the alarm: check the PLC and its connection",
    },
    "alert.OUTPUT_FAILED.written": {
        "ko": "출력을 다시 쓸 수 있습니다",
        "en": "the output is written again",
    },
    # ------------------------------------------------------------------ capability: distribution warnings
    # spc.capability_percentile.Warning keys; English as its ENGLISH (tests/test_spc_distributions.py)
    "distribution.normal": {"ko": "정규(normal)", "en": "normal"},
    "distribution.lognormal": {"ko": "로그정규(lognormal)", "en": "lognormal"},
    "distribution.weibull": {"ko": "와이블(weibull)", "en": "weibull"},
    "distribution.folded_normal": {"ko": "접힌 정규(folded_normal)", "en": "folded_normal"},
    "capability.warning.not_normal": {
        "ko": "측정값이 정규분포로 보이지 않습니다 (Anderson-Darling p = {p_value:.3g}). capability.distribution: auto를 "
              "검토하세요",
        "en": "the values do not look normal (Anderson-Darling p = {p_value:.3g}); try capability.distribution: auto",
    },
    "capability.warning.not_like": {
        "ko": "측정값이 {distribution} 분포로 보이지 않습니다 (Anderson-Darling p = {p_value:.3g})",
        "en": "the values do not look {distribution} (Anderson-Darling p = {p_value:.3g})",
    },
    "capability.warning.none_fits": {
        "ko": "맞는 분포가 없습니다 (Anderson-Darling {listed}; 모두 0.05 미만). 공정능력을 정규분포로 계산했습니다",
        "en": "no distribution fits the values (Anderson-Darling {listed}; each below 0.05): the capability is "
              "computed as normal",
    },
    "capability.warning.at_or_below_zero": {
        "ko": "{distribution} 분포에는 0 이하의 값이 없는데 측정값 {count}개가 0 이하입니다 (최소 {lowest:g}). "
              "공정능력을 정규분포로 계산했습니다",
        "en": "a {distribution} distribution has no values at or below 0, and {count} of the values are (lowest "
              "{lowest:g}): the capability is computed as normal",
    },
    "capability.warning.below_zero": {
        "ko": "{distribution} 분포에는 음수 값이 없는데 측정값 {count}개가 음수입니다 (최소 {lowest:g}). 공정능력을 "
              "정규분포로 계산했습니다",
        "en": "a {distribution} distribution has no values below 0, and {count} of the values are (lowest "
              "{lowest:g}): the capability is computed as normal",
    },
    "capability.warning.spread": {
        "ko": "0에서의 거리에 비해 측정값의 산포가 너무 작아 {distribution} 분포를 맞출 수 없습니다. 공정능력을 "
              "정규분포로 계산했습니다",
        "en": "the spread of the values is too small for their distance from 0 to fit a {distribution} "
              "distribution: the capability is computed as normal",
    },
    # ------------------------------------------------------------------ refusals worded per language
    # limits recalculation: why the stored subgroups give no limits (spc.charts.EstimateError.reason)
    "error.estimate.no_values": {
        "ko": "부분군에 값이 없어 중심선을 추정할 수 없습니다",
        "en": "no subgroups to estimate the center from",
    },
    "error.estimate.imr_too_few": {
        "ko": "I-MR 관리도는 시그마를 추정하려면 개별값이 2개 이상 필요합니다",
        "en": "an I-MR chart needs at least 2 individual values to estimate sigma",
    },
    "error.estimate.no_within": {
        "ko": "값이 2개 이상인 부분군이 없어 부분군 내 시그마를 추정할 수 없습니다",
        "en": "no subgroup with 2 or more values to estimate the within-subgroup sigma",
    },
    "error.estimate.not_finite": {
        "ko": "이 부분군들로는 관리한계를 그릴 수 없습니다: 측정값으로 볼 수 없을 만큼 큰 값이 있어 한계가 유한한 수가 "
              "되지 않습니다",
        "en": "no control limits can be drawn from these subgroups: their values give no finite limits (values "
              "far beyond any measurement)",
    },
    "error.estimate.laney_too_few": {
        "ko": "Laney 관리도는 sigma_Z를 추정하려면 샘플이 2개 이상 필요합니다",
        "en": "a Laney chart needs at least 2 samples to estimate sigma_Z",
    },
    "error.estimate.attribute_samples": {
        "ko": "계수형 관리도의 한계는 측정값이 아니라 샘플(불량 수와 샘플 크기)에서 추정합니다",
        "en": "an attribute chart estimates its limits from samples (counts and sample sizes), not from values",
    },
    "error.too_few_subgroups": {
        "ko": "부분군 {from_subgroup}부터 저장된 부분군이 {n}개뿐입니다. 한계를 계산하려면 2개 이상 필요합니다",
        "en": "only {n} stored subgroups from subgroup {from_subgroup}: need at least 2",
    },
    # the parts spliced into the errors above, each in both languages
    "expect.id": {"ko": "양의 정수", "en": "a positive whole number"},
    "expect.int": {"ko": "{lo}부터 {hi}까지의 정수", "en": "a whole number from {lo} to {hi}"},
    "expect.number": {"ko": "{lo}보다 크고 {hi} 이하인 수", "en": "a number above {lo} and at most {hi}"},
    "expect.choice": {"ko": "{choices} 중 하나", "en": "one of {choices}"},
    "expect.text": {"ko": "{hi}자 이하의 텍스트", "en": "text of at most {hi} characters"},
    "expect.any_text": {"ko": "텍스트", "en": "text"},
    "expect.request_id": {"ko": "문자열 또는 숫자", "en": "a string or a number"},
    "expect.type": {"ko": "'get_alerts' 같은 문자열", "en": "a string such as 'get_alerts'"},
    "json.list": {"ko": "배열을 받았습니다", "en": "got list"},
    "json.str": {"ko": "문자열을 받았습니다", "en": "got str"},
    "json.int": {"ko": "숫자를 받았습니다", "en": "got int"},
    "json.float": {"ko": "숫자를 받았습니다", "en": "got float"},
    "json.bool": {"ko": "참/거짓 값을 받았습니다", "en": "got bool"},
    "json.NoneType": {"ko": "null을 받았습니다", "en": "got NoneType"},
    "status.OPEN": {"ko": "미확인", "en": "OPEN"},
    "status.ACKNOWLEDGED": {"ko": "확인됨", "en": "ACKNOWLEDGED"},
    "status.SHELVED": {"ko": "보류", "en": "SHELVED"},
    "status.RESOLVED": {"ko": "해결됨", "en": "RESOLVED"},
    "action.acknowledged": {"ko": "확인", "en": "acknowledged"},
    "action.shelved": {"ko": "보류", "en": "shelved"},
    "action.unshelved": {"ko": "보류 해제", "en": "unshelved"},
    "action.resolved": {"ko": "해결", "en": "resolved"},
    "error.json_number": {
        "ko": "JSON의 정수가 너무 깁니다 (4300자리 초과): 어떤 필드도 이런 숫자를 받지 않습니다",
        "en": "not JSON: an integer has more than 4300 digits (no field takes such a number)",
    },
}

# Nelson tests by number, and the Western Electric rules in their own numbering.
_RULES: dict[str, dict[int, tuple[str, str]]] = {
    "nelson": {
        1: ("1점이 3σ 밖", "one point beyond 3 sigma"),
        2: ("9점 연속 중심선 한쪽", "nine points in a row on one side of the center line"),
        3: ("6점 연속 증가 또는 감소", "six points in a row steadily increasing or decreasing"),
        4: ("14점 연속 번갈아 증감", "fourteen points in a row alternating up and down"),
        5: ("3점 중 2점이 같은 쪽 2σ 밖", "two of three points beyond 2 sigma on the same side"),
        6: ("5점 중 4점이 같은 쪽 1σ 밖", "four of five points beyond 1 sigma on the same side"),
        7: ("15점 연속 1σ 이내", "fifteen points in a row within 1 sigma"),
        8: ("8점 연속 1σ 밖 (양쪽)", "eight points in a row beyond 1 sigma on both sides"),
    },
    "western_electric": {
        1: ("1점이 3σ 밖", "one point beyond 3 sigma"),
        2: ("3점 중 2점이 같은 쪽 2σ 밖", "two of three points beyond 2 sigma on the same side"),
        3: ("5점 중 4점이 같은 쪽 1σ 밖", "four of five points beyond 1 sigma on the same side"),
        4: ("8점 연속 중심선 한쪽", "eight points in a row on one side of the center line"),
    },
}


def text(language: str, key: str, **values: object) -> str:
    """The text `key` in `language` (English when the language has none), filled with `values`."""
    entry = _TEXTS[key]
    template = entry.get(language) or entry["en"]
    return template.format(**values) if values else template


def texts(key: str, **values: object) -> dict[str, str]:
    """The text `key` in every language. A value that is a mapping of languages, or a callable of the
    language, is filled in each language's own words, so no message mixes two languages."""
    out: dict[str, str] = {}
    for lang in LANGUAGES:
        filled = {k: _in(lang, v) for k, v in values.items()}
        out[lang] = text(lang, key, **filled)
    return out


def _in(language: str, value: object) -> object:
    if callable(value):
        return value(language)
    if isinstance(value, Mapping) and language in value:
        return value[language]
    return value


def error_texts(message: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The `texts` of an `error` reply, shaped like an alert's: {language: {"message": ...}}."""
    return {lang: {"message": message[lang]} for lang in LANGUAGES if lang in message}


class Refusal(ValueError):
    """A request the gateway refuses: `code` is a stable protocol error code (invalid_field, not_found,
    storage_unavailable...), `texts` the reason in every language ({language: text}, from `texts()`).
    The protocol's checks, the alert service and the limits recalculation all refuse with it, and the
    line-side service turns it into one `error` reply. str() is the English text, for logs. A ValueError,
    as a value the gateway does not take, so a caller that only knows ValueError still says why."""

    def __init__(self, code: str, texts_: Mapping[str, str]):
        super().__init__(texts_.get("en", next(iter(texts_.values()))))
        self.code = code
        self.texts = dict(texts_)

    def message(self, language: str) -> str:
        """The reason in `language` (English when it has none)."""
        return self.texts.get(language) or self.texts["en"]


def rule_description(language: str, convention: str, rule: int, fallback: str = "") -> str:
    """What run rule `rule` of `convention` detects, in words an operator reads."""
    pair = _RULES.get(convention, {}).get(rule)
    if pair is None:
        return fallback or f"rule {rule}"
    return pair[0] if language == "ko" else pair[1]


def number(value: float | None) -> str:
    """A measured number as people read it: six significant digits, no exponent for shop values."""
    if value is None:
        return "-"
    return f"{value:.6g}"
