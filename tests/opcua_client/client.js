// An independent OPC UA client for tests/test_opcua_server_node.py: node-opcua's, not asyncua's.
// node client.js '{"endpoint": ..., "product": "BOLT-M10", "characteristic": "diameter", "expect": 31,
//                  "operator": ["kim", "pw"], "viewer": ["lee", "pw"], "pki": "/tmp/..."}'
// Prints one JSON object per line: {"ready": true} once subscribed (the test then feeds readings),
// then what it saw and the status codes the server answered.
"use strict";
const {
    OPCUAClient, MessageSecurityMode, SecurityPolicy, AttributeIds, TimestampsToReturn, ClientSubscription,
    ClientMonitoredItem, DataType, UserTokenType, constructEventFilter,
} = require("node-opcua-client");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");

const args = JSON.parse(process.argv[2]);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const wait = (check, ms) => new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const timer = setInterval(() => {
        if (check()) { clearInterval(timer); resolve(); }
        else if (Date.now() > deadline) { clearInterval(timer); reject(new Error("timed out")); }
    }, 20);
});

function makeClient(secure) {
    return OPCUAClient.create({
        applicationName: "spc-gateway-test-client",
        endpointMustExist: false,
        securityMode: secure ? MessageSecurityMode.SignAndEncrypt : MessageSecurityMode.None,
        securityPolicy: secure ? SecurityPolicy.Basic256Sha256 : SecurityPolicy.None,
        connectionStrategy: { maxRetry: 1, initialDelay: 200, maxDelay: 500 },
        clientCertificateManager: new OPCUACertificateManager({
            rootFolder: args.pki, automaticallyAcceptUnknownCertificate: true }),
    });
}

async function session(secure, user) {
    const client = makeClient(secure);
    await client.connect(args.endpoint);
    const identity = user ? { type: UserTokenType.UserName, userName: user[0], password: user[1] } : undefined;
    return { client, session: await client.createSession(identity) };
}

async function main() {
    const ns = (await (await session(false)).session.readNamespaceArray());
    const idx = ns.indexOf("urn:spc-gateway");
    const base = `ns=${idx};s=SPC/${args.product}/${args.characteristic}`;
    const anon = await session(false);
    const s = anon.session;
    const browsed = await s.browse(base);
    const dataType = await s.read({ nodeId: `${base}/Value`, attributeId: AttributeIds.DataType });
    const usl = await s.read({ nodeId: `${base}/USL`, attributeId: AttributeIds.Value });
    const written = await s.write({ nodeId: `${base}/Value`, attributeId: AttributeIds.Value,
                                    value: { value: { dataType: DataType.Double, value: 1.0 } } });
    out({ browse: browsed.references.map((r) => r.browseName.name).sort(), dataType: dataType.value.value.toString(),
          usl: usl.value.value, write: written.name });

    const subscription = ClientSubscription.create(s, {
        requestedPublishingInterval: 100, requestedLifetimeCount: 600, requestedMaxKeepAliveCount: 10,
        maxNotificationsPerPublish: 0, publishingEnabled: true, priority: 1 });
    const values = [];
    const item = ClientMonitoredItem.create(subscription, { nodeId: `${base}/Value`, attributeId: AttributeIds.Value },
        { samplingInterval: 0, discardOldest: false, queueSize: 1000 }, TimestampsToReturn.Both);
    item.on("changed", (dv) => values.push(dv));
    const fields = ["EventId", "SourceName", "Message", "Severity", "ConditionName", "AckedState.Id", "Retain",
                    "ConditionId"];
    const events = [];
    const alarms = ClientMonitoredItem.create(subscription, { nodeId: "i=2253", attributeId: AttributeIds.EventNotifier },
        { samplingInterval: 0, discardOldest: false, queueSize: 100, filter: constructEventFilter(fields) },
        TimestampsToReturn.Both);
    alarms.on("changed", (variants) => {
        const e = {};
        fields.forEach((f, i) => { e[f] = variants[i].value; });
        events.push(e);
    });
    await wait(() => values.length >= 1, 10000);  // the value now (waiting for data)
    values.length = 0;
    out({ ready: true });

    await wait(() => values.length >= args.expect
                     && events.some((e) => e.ConditionName === "OUT_OF_SPEC"), 20000);
    const alarm = events.find((e) => e.ConditionName === "OUT_OF_SPEC");
    const comment = "checked the gauge";
    const anonymousAck = await s.acknowledgeCondition(alarm.ConditionId, alarm.EventId, comment);
    const viewer = await session(false, args.viewer);
    const viewerAck = await viewer.session.acknowledgeCondition(alarm.ConditionId, alarm.EventId, comment);
    const operator = await session(true, args.operator);
    const operatorAck = await operator.session.acknowledgeCondition(alarm.ConditionId, alarm.EventId, comment);
    await wait(() => events.some((e) => e.ConditionName === "OUT_OF_SPEC" && e["AckedState.Id"] === true), 10000);
    out({
        values: values.map((dv) => dv.value.value),
        sourceTimestamps: values.map((dv) => dv.sourceTimestamp.getTime()),
        alarm: { severity: alarm.Severity, message: alarm.Message.text, source: alarm.SourceName,
                 acked: alarm["AckedState.Id"], retain: alarm.Retain },
        anonymousAck: anonymousAck.name, viewerAck: viewerAck.name, operatorAck: operatorAck.name,
        operatorPolicy: operator.client.securityPolicy, acknowledgedEvent: true,
    });
    for (const c of [operator, viewer, anon]) {
        await c.session.close();
        await c.client.disconnect();
    }
    process.exit(0);
}

main().catch((err) => { out({ error: String(err && err.stack || err) }); process.exit(1); });
