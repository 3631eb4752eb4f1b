// The subscribed OPC UA clients of bench_opcua_server.py, all in one node-opcua process: a plant's
// SCADA and PLC clients run on machines of their own, so on a 2-core bench they must cost as little
// as possible (ten asyncua processes decoding 1,000 values/s each took more CPU than the daemon).
// node opcua_subscribers.js ENDPOINT COUNT SECONDS OUT
// Each client is its own connection and session with one subscription (100 ms publishing interval)
// on SPC/BENCH/x/Value (queue 1,000, every change kept). A value is the reading's send time on
// CLOCK_MONOTONIC (process.hrtime is that clock on Linux, as Python's time.monotonic()).
// Prints "ready" once every client is subscribed; writes {latencies: [[ms...] per client], cpu, seconds},
// the CPU seconds used and the seconds elapsed after "ready".
"use strict";
const path = require("path");
// the tests' independent client's install (npm ci in tests/opcua_client)
const { OPCUAClient, AttributeIds, TimestampsToReturn, ClientSubscription, ClientMonitoredItem } =
    require(path.join(__dirname, "..", "tests", "opcua_client", "node_modules", "node-opcua-client"));
const fs = require("fs");

const [endpoint, count, seconds, out] = [process.argv[2], +process.argv[3], +process.argv[4], process.argv[5]];
const now = () => Number(process.hrtime.bigint()) / 1e6;

async function subscriber(latencies) {
    const client = OPCUAClient.create({ endpointMustExist: false, connectionStrategy: { maxRetry: 3 } });
    await client.connect(endpoint);
    const session = await client.createSession();
    const idx = (await session.readNamespaceArray()).indexOf("urn:spc-gateway");
    const subscription = ClientSubscription.create(session, {
        requestedPublishingInterval: 100, requestedLifetimeCount: 600, requestedMaxKeepAliveCount: 10,
        maxNotificationsPerPublish: 0, publishingEnabled: true, priority: 1 });
    const item = ClientMonitoredItem.create(subscription,
        { nodeId: `ns=${idx};s=SPC/BENCH/x/Value`, attributeId: AttributeIds.Value },
        { samplingInterval: 0, discardOldest: false, queueSize: 1000 }, TimestampsToReturn.Both);
    let first = true;  // the value when subscribing: the last reading of the phase before
    item.on("changed", (dv) => {
        if (first) { first = false; return; }
        if (typeof dv.value.value === "number") latencies.push(now() - dv.value.value * 1000);
    });
    await new Promise((resolve) => item.once("initialized", resolve));
    return { client, session };
}

async function main() {
    const latencies = Array.from({ length: count }, () => []);
    const clients = await Promise.all(latencies.map((l) => subscriber(l)));
    process.stdout.write("ready\n");
    // from here on: what the clients use while values flow, not node's start and the connects
    const started = now();
    const cpuStart = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const cpu = process.cpuUsage(cpuStart);
    fs.writeFileSync(out, JSON.stringify({ latencies, cpu: (cpu.user + cpu.system) / 1e6,
                                           seconds: (now() - started) / 1000 }));
    await Promise.all(clients.map(async ({ client, session }) => { await session.close(); await client.disconnect(); }));
    process.exit(0);
}
main().catch((err) => { console.error(err); process.exit(1); });
