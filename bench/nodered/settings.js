// Node-RED settings for bench/bench_relay.py: the relay only, on loopback, with nothing that asks a
// person anything (no editor, no credentials file, no telemetry prompt) and nothing written but the
// user dir the bench gives it.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.BENCH_RELAY_PORT, 10),
    flowFile: require("path").join(__dirname, "flows.json"),
    httpAdminRoot: false,            // no editor, no admin API
    credentialSecret: false,         // the flow has no credentials: never ask for a key
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false },
    runtimeState: { enabled: false, ui: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
    logging: { console: { level: "warn", metrics: false, audit: false } },
    editorTheme: { tours: false, projects: { enabled: false } },
};
