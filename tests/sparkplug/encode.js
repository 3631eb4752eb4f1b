// Encodes a Sparkplug B payload with Eclipse Tahu's sparkplug-payload (written by no one here), as a
// host would send it. argv[2]: the payload as JSON (Tahu's object form); stdout: the bytes as hex.
const { get } = require("sparkplug-payload");
const sparkplug = get("spBv1.0");
const payload = JSON.parse(process.argv[2]);
process.stdout.write(Buffer.from(sparkplug.encodePayload(payload)).toString("hex") + "\n");
