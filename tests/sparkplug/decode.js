// Decodes Sparkplug B payloads with Eclipse Tahu's sparkplug-payload (written by no one here).
// stdin: one JSON line per payload {"topic": ..., "hex": ...}; stdout: one JSON line per decoded payload.
const { get } = require("sparkplug-payload");
const sparkplug = get("spBv1.0");
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
for (const line of lines) {
  const { topic, hex } = JSON.parse(line);
  const decoded = sparkplug.decodePayload(Buffer.from(hex, "hex"));
  process.stdout.write(JSON.stringify({ topic, payload: decoded }, (k, v) =>
    (typeof v === "bigint" ? Number(v) : (v && v.low !== undefined && v.high !== undefined && v.unsigned !== undefined ? Number(BigInt.asUintN(64, (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0))) : v))) + "\n");
}
