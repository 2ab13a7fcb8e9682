// validate.mjs - check what `kubectl kustomize deploy/kubernetes` renders,
// offline (tests/k8s/check.sh runs it):
//
//   node validate.mjs RENDERED.yaml RINGMASTER.ini CONTAINERFILE
//   node validate.mjs --self-test RENDERED.yaml RINGMASTER.ini CONTAINERFILE
//
// 1. Every object against the Kubernetes schemas: the model class of its
//    apiVersion and kind from the npm packages kubernetes-models and
//    @kubernetes-models/keda, and that class's validate() (types, required
//    fields, enums, formats). An object of a kind no package knows fails.
// 2. The objects against each other and against the INI that the ConfigMap
//    carries and the Containerfile that makes the image: probe paths and
//    port, the grace period against drain_delay + shutdown_timeout, the
//    runtime_dir on a writable volume, selectors, the ConfigMap's name and
//    content, the image's user, port and configuration path.
//
// --self-test breaks a copy of the objects in ways each check must catch
// (a schema error, a wrong probe path, a short grace period, ...) and fails
// unless every break is reported: the checks can fail.
//
// Exit 0: all good; 1: a check failed (each failure on its own line).
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

// ------------------------------------------------------------------ inputs

function parseIni(text) {
    // ringmaster's INI (core/config.c through inih): [section], key = value,
    // ; and # comments on their own lines.
    const sections = {};
    let cur = null;
    for (const raw of text.split("\n")) {
        const line = raw.trim();
        if (!line || line.startsWith(";") || line.startsWith("#")) continue;
        const m = /^\[(.+)\]$/.exec(line);
        if (m) {
            cur = m[1].trim();
            sections[cur] = sections[cur] || {};
            continue;
        }
        const eq = line.indexOf("=");
        if (eq < 0 || cur === null) throw new Error(`ini: cannot read line ${JSON.stringify(raw)}`);
        sections[cur][line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
    }
    return sections;
}

// Durations as docs/contract.md has them: ms, s or m; a plain number is ms.
function durationSeconds(v) {
    const m = /^(\d+)\s*(ms|s|m)?$/.exec(v);
    if (!m) throw new Error(`ini: bad duration ${JSON.stringify(v)}`);
    const n = Number(m[1]);
    return m[2] === "s" ? n : m[2] === "m" ? n * 60 : n / 1000;
}

// The TCP ports of an INI listen list that every interface reaches.
function listenPorts(listen) {
    const out = [];
    for (const item of listen.split(",").map((s) => s.trim())) {
        if (item.startsWith("unix:")) continue;
        const m = /^(.*):(\d+)$/.exec(item);
        if (m) out.push({ host: m[1], port: Number(m[2]) });
    }
    return out;
}

// From the Containerfile: the runtime stage's USER (numeric), EXPOSE and
// the -c FILE of its ENTRYPOINT.
function parseContainerfile(text) {
    const stages = text.split(/^FROM\s/m);
    const last = stages[stages.length - 1];
    const user = /^USER\s+(\S+)/m.exec(last);
    const expose = /^EXPOSE\s+(\d+)/m.exec(last);
    const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(last);
    const argv = entry ? JSON.parse(entry[1]) : [];
    const c = argv.indexOf("-c");
    return {
        user: user ? user[1] : null,
        expose: expose ? Number(expose[1]) : null,
        argv,
        config: c >= 0 ? argv[c + 1] : null,
    };
}

// ------------------------------------------------------------------ schemas

async function modelClass(apiVersion, kind) {
    const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
    const mod = group === "keda.sh" ? `@kubernetes-models/keda/keda.sh/${version}`
        : group === "" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
    let m;
    try {
        m = await import(mod);
    } catch (e) {
        return null;
    }
    return m[kind] || null;
}

async function schemaErrors(objs) {
    const errs = [];
    for (const o of objs) {
        const what = `${o.kind}/${o.metadata && o.metadata.name}`;
        const Cls = await modelClass(String(o.apiVersion), String(o.kind));
        if (!Cls) {
            errs.push(`${what}: no model for apiVersion ${o.apiVersion} kind ${o.kind}`);
            continue;
        }
        try {
            new Cls(structuredClone(o)).validate();
        } catch (e) {
            errs.push(`${what}: schema: ${e.message}`);
        }
    }
    return errs;
}

// ------------------------------------------------------------------ cross checks

function matches(selector, labels) {
    return Object.entries(selector || {}).every(([k, v]) => labels[k] === v) && Object.keys(selector || {}).length > 0;
}

function crossErrors(objs, ini, iniText, cf) {
    const errs = [];
    const bad = (msg) => errs.push(msg);
    const byKind = (k) => objs.filter((o) => o.kind === k);
    for (const k of ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "ScaledObject"])
        if (byKind(k).length !== 1) bad(`expected one ${k}, found ${byKind(k).length}`);
    if (errs.length) return errs;
    const [cm] = byKind("ConfigMap");
    const [dep] = byKind("Deployment");
    const [svc] = byKind("Service");
    const [pdb] = byKind("PodDisruptionBudget");
    const [so] = byKind("ScaledObject");
    const rm = ini.ringmaster || {};
    const pod = dep.spec.template.spec;
    const labels = dep.spec.template.metadata.labels || {};
    const ctr = (pod.containers || []).find((c) => c.name === "ringmaster");
    if (!ctr) return [`Deployment: no container named ringmaster`];

    // The port: the INI listens on every interface on the container's port `http`.
    const httpPort = (ctr.ports || []).find((p) => p.name === "http");
    if (!httpPort) bad("Deployment: no container port named http");
    const ports = listenPorts(rm.listen || "127.0.0.1:8080");
    const wild = ports.filter((p) => ["0.0.0.0", "[::]", "*", ""].includes(p.host));
    if (httpPort && !wild.some((p) => p.port === httpPort.containerPort))
        bad(`ini: listen = ${rm.listen} has no all-interfaces address on the container port ${httpPort && httpPort.containerPort}`);
    const portOf = (p) => (p === "http" && httpPort ? httpPort.containerPort : p);

    // The probes: the v2 health paths on that port.
    const want = { startupProbe: "/v2/health/ready", readinessProbe: "/v2/health/ready", livenessProbe: "/v2/health/live" };
    for (const [probe, path] of Object.entries(want)) {
        const p = ctr[probe];
        if (!p || !p.httpGet) {
            bad(`Deployment: no ${probe} httpGet`);
            continue;
        }
        if (p.httpGet.path !== path) bad(`Deployment: ${probe} path ${p.httpGet.path}, not ${path}`);
        if (!httpPort || portOf(p.httpGet.port) !== httpPort.containerPort)
            bad(`Deployment: ${probe} port ${p.httpGet.port} is not the port ringmaster listens on`);
        if ((p.httpGet.scheme || "HTTP") !== "HTTP") bad(`Deployment: ${probe} scheme ${p.httpGet.scheme}`);
    }
    // The startup probe outlasts the slowest model load.
    const sp = ctr.startupProbe;
    if (sp) {
        const allowed = (sp.periodSeconds || 10) * (sp.failureThreshold || 3);
        let slowest = 0;
        for (const [name, keys] of Object.entries(ini))
            if (name.startsWith("pool ")) slowest = Math.max(slowest, durationSeconds(keys.startup_timeout || "60s"));
        if (allowed <= slowest) bad(`Deployment: the startup probe allows ${allowed} s, a pool's startup_timeout is ${slowest} s`);
    }
    // The prometheus.io annotations name that port and /metrics.
    const ann = dep.spec.template.metadata.annotations || {};
    if (httpPort && ann["prometheus.io/port"] !== String(httpPort.containerPort)) bad("Deployment: prometheus.io/port is not the http port");
    if (ann["prometheus.io/path"] !== "/metrics") bad("Deployment: prometheus.io/path is not /metrics");

    // The grace period outlasts the drain and the graceful stop.
    const drain = durationSeconds(rm.drain_delay || "0");
    const stop = durationSeconds(rm.shutdown_timeout || "30s");
    const grace = pod.terminationGracePeriodSeconds === undefined ? 30 : pod.terminationGracePeriodSeconds;
    if (!(grace > drain + stop))
        bad(`Deployment: terminationGracePeriodSeconds ${grace} is not above drain_delay ${drain} s + shutdown_timeout ${stop} s`);
    // Drain: readiness must turn the pod out of the endpoints within drain_delay.
    const rp = ctr.readinessProbe;
    if (rp && drain > 0 && (rp.periodSeconds || 10) * (rp.failureThreshold || 3) >= drain)
        bad(`Deployment: readiness needs ${(rp.periodSeconds || 10) * (rp.failureThreshold || 3)} s to see a drain, drain_delay is ${drain} s`);
    const ru = dep.spec.strategy && dep.spec.strategy.rollingUpdate;
    if (!ru || ru.maxUnavailable !== 0) bad("Deployment: rollingUpdate.maxUnavailable must be 0 (capacity during a rollout)");
    if (dep.spec.replicas !== undefined) bad("Deployment: replicas is set, but the ScaledObject's HPA owns it");

    // Security: non-root, read-only root, nothing to escalate.
    const psc = pod.securityContext || {};
    const csc = ctr.securityContext || {};
    if (!(psc.runAsNonRoot || csc.runAsNonRoot)) bad("Deployment: runAsNonRoot is not set");
    const uid = csc.runAsUser !== undefined ? csc.runAsUser : psc.runAsUser;
    if (!(uid > 0)) bad("Deployment: runAsUser must be a non-zero uid");
    if (csc.readOnlyRootFilesystem !== true) bad("Deployment: readOnlyRootFilesystem is not true");
    if (csc.allowPrivilegeEscalation !== false) bad("Deployment: allowPrivilegeEscalation is not false");
    if (!(csc.capabilities && (csc.capabilities.drop || []).includes("ALL"))) bad("Deployment: capabilities are not dropped");
    const res = ctr.resources || {};
    if (!(res.requests && res.requests.cpu && res.requests.memory)) bad("Deployment: no cpu and memory requests");
    if (!(res.limits && res.limits.memory)) bad("Deployment: no memory limit");

    // Volumes: runtime_dir inside an emptyDir (made by ringmaster: an
    // emptyDir's own mode 0777 would be refused), the ConfigMap where the
    // image's ENTRYPOINT reads its INI.
    const vols = Object.fromEntries((pod.volumes || []).map((v) => [v.name, v]));
    const mounts = ctr.volumeMounts || [];
    const rtd = rm.runtime_dir || "/run/ringmaster";
    const under = (dir, m) => dir.startsWith(m.mountPath.replace(/\/$/, "") + "/");
    const rtm = mounts.find((m) => under(rtd, m) && vols[m.name] && vols[m.name].emptyDir && !m.readOnly);
    if (!rtm) bad(`Deployment: runtime_dir ${rtd} is not inside a writable emptyDir (and must not be the mount itself)`);
    const cfgMount = mounts.find((m) => vols[m.name] && vols[m.name].configMap);
    if (!cfgMount) bad("Deployment: no ConfigMap mounted");
    else {
        if (vols[cfgMount.name].configMap.name !== cm.metadata.name)
            bad(`Deployment: mounts ConfigMap ${vols[cfgMount.name].configMap.name}, the rendered one is ${cm.metadata.name}`);
        if (!/^ringmaster-config-[a-z0-9]{10}$/.test(cm.metadata.name))
            bad(`ConfigMap ${cm.metadata.name}: no content hash in its name (a change would not roll the pods)`);
        const keys = Object.keys(cm.data || {});
        if (!cf.config || `${cfgMount.mountPath.replace(/\/$/, "")}/${keys[0]}` !== cf.config || keys.length !== 1)
            bad(`ConfigMap keys ${keys} at ${cfgMount.mountPath}: the image reads ${cf.config}`);
        if ((cm.data || {})["ringmaster.ini"] !== iniText) bad("ConfigMap: ringmaster.ini differs from deploy/kubernetes/ringmaster.ini");
    }
    // The image (deploy/container/Containerfile).
    if (cf.user !== String(uid)) bad(`Containerfile: USER ${cf.user}, the pod runs as ${uid}`);
    if (!httpPort || cf.expose !== httpPort.containerPort) bad(`Containerfile: EXPOSE ${cf.expose}, the container port is ${httpPort && httpPort.containerPort}`);
    if (ctr.command || ctr.args) bad("Deployment: command/args override the image's ENTRYPOINT");

    // Service and PDB select the pods; the ScaledObject scales the Deployment.
    if (!matches(dep.spec.selector.matchLabels, labels)) bad("Deployment: its selector does not match its pods");
    if (!matches(svc.spec.selector, labels)) bad("Service: its selector does not match the pods");
    const tp = (svc.spec.ports || [])[0];
    if (!tp || portOf(tp.targetPort) !== (httpPort && httpPort.containerPort)) bad("Service: targetPort is not the http port");
    if (!pdb.spec.selector || !matches(pdb.spec.selector.matchLabels, labels)) bad("PodDisruptionBudget: its selector does not match the pods");
    const ref = so.spec.scaleTargetRef || {};
    if (ref.name !== dep.metadata.name || (ref.kind || "Deployment") !== "Deployment") bad("ScaledObject: does not scale the Deployment");
    const trig = (so.spec.triggers || []).find((t) => t.type === "prometheus");
    if (!trig || !/ringmaster_queue_depth/.test(trig.metadata.query || "")) bad("ScaledObject: no prometheus trigger on ringmaster_queue_depth");
    else if ((trig.metricType || "AverageValue") !== "AverageValue") bad("ScaledObject: the target is not per pod (AverageValue)");
    if (!((so.spec.minReplicaCount || 0) >= 2)) bad("ScaledObject: minReplicaCount below 2 (the PDB would allow no eviction, or one pod is all)");
    return errs;
}

async function check(objs, ini, iniText, cf) {
    return [...(await schemaErrors(objs)), ...crossErrors(objs, ini, iniText, cf)];
}

// ------------------------------------------------------------------ self test

// Each break must make check() report something that contains `expect`.
const BREAKS = [
    ["schema: a string port", "must be integer", (o) => { dep(o).spec.template.spec.containers[0].ports[0].containerPort = "8080"; }],
    ["schema: a bad enum", "must be equal to one of the allowed values", (o) => { kind(o, "PodDisruptionBudget").spec.unhealthyPodEvictionPolicy = "Sometimes"; }],
    ["schema: KEDA threshold as a number", "must be string", (o) => { kind(o, "ScaledObject").spec.triggers[0].metadata.threshold = 8; }],
    ["schema: a missing required field", "must have required property", (o) => { delete dep(o).spec.template.spec.containers[0].name; }],
    ["an unknown kind", "no model", (o) => { o.push({ apiVersion: "example.com/v1", kind: "Nothing", metadata: { name: "x" } }); }],
    ["readiness on the live path", "readinessProbe path", (o) => { ctr(o).readinessProbe.httpGet.path = "/v2/health/live"; }],
    ["liveness on the ready path", "livenessProbe path", (o) => { ctr(o).livenessProbe.httpGet.path = "/v2/health/ready"; }],
    ["a probe on another port", "startupProbe port", (o) => { ctr(o).startupProbe.httpGet.port = 9090; }],
    ["a short grace period", "terminationGracePeriodSeconds", (o) => { dep(o).spec.template.spec.terminationGracePeriodSeconds = 40; }],
    ["a writable root", "readOnlyRootFilesystem", (o) => { ctr(o).securityContext.readOnlyRootFilesystem = false; }],
    ["root", "runAsUser", (o) => { dep(o).spec.template.spec.securityContext.runAsUser = 0; }],
    ["runtime_dir the emptyDir itself", "runtime_dir", (o) => { ctr(o).volumeMounts.find((m) => m.mountPath === "/run").mountPath = "/run/ringmaster"; }],
    ["a ConfigMap without hash", "content hash", (o) => { const c = kind(o, "ConfigMap"); c.metadata.name = "ringmaster-config"; dep(o).spec.template.spec.volumes.find((v) => v.configMap).configMap.name = c.metadata.name; }],
    ["a PDB selecting nothing of ours", "PodDisruptionBudget: its selector", (o) => { delete kind(o, "PodDisruptionBudget").spec.selector; }],
    ["replicas pinned", "replicas is set", (o) => { dep(o).spec.replicas = 3; }],
];
const kind = (objs, k) => objs.find((o) => o.kind === k);
const dep = (objs) => kind(objs, "Deployment");
const ctr = (objs) => dep(objs).spec.template.spec.containers[0];

async function selfTest(objs, ini, iniText, cf) {
    let failed = 0;
    const base = await check(objs, ini, iniText, cf);
    if (base.length) {
        console.log(`self-test: the unbroken objects already fail:\n  ${base.join("\n  ")}`);
        return 1;
    }
    // The INI side: a probe port the INI does not listen on, a drain longer than the grace.
    const iniBreaks = [
        ["the INI on another port", "no all-interfaces address", { ...ini, ringmaster: { ...ini.ringmaster, listen: "0.0.0.0:9000" } }],
        ["the INI on loopback only", "no all-interfaces address", { ...ini, ringmaster: { ...ini.ringmaster, listen: "127.0.0.1:8080" } }],
        ["a longer drain_delay", "terminationGracePeriodSeconds", { ...ini, ringmaster: { ...ini.ringmaster, drain_delay: "30s" } }],
    ];
    for (const [what, expect, mutate] of BREAKS) {
        const copy = structuredClone(objs);
        mutate(copy);
        const errs = await check(copy, ini, iniText, cf);
        const hit = errs.some((e) => e.includes(expect));
        console.log(`self-test: ${what}: ${hit ? "caught" : "MISSED"}${hit ? "" : ` (got: ${errs.join("; ") || "nothing"})`}`);
        failed += hit ? 0 : 1;
    }
    for (const [what, expect, broken] of iniBreaks) {
        const errs = await check(objs, broken, iniText, cf);
        const hit = errs.some((e) => e.includes(expect));
        console.log(`self-test: ${what}: ${hit ? "caught" : "MISSED"}${hit ? "" : ` (got: ${errs.join("; ") || "nothing"})`}`);
        failed += hit ? 0 : 1;
    }
    return failed ? 1 : 0;
}

// ------------------------------------------------------------------ main

const args = process.argv.slice(2);
const self = args[0] === "--self-test";
if (self) args.shift();
if (args.length !== 3) {
    console.error("usage: node validate.mjs [--self-test] RENDERED.yaml RINGMASTER.ini CONTAINERFILE");
    process.exit(2);
}
const docs = parseAllDocuments(readFileSync(args[0], "utf8"));
const objs = [];
for (const d of docs) {
    if (d.errors.length) {
        console.log(`yaml: ${d.errors[0].message}`);
        process.exit(1);
    }
    const o = d.toJS();
    if (o) objs.push(o);
}
const iniText = readFileSync(args[1], "utf8");
const ini = parseIni(iniText);
const cf = parseContainerfile(readFileSync(args[2], "utf8"));
if (self) process.exit(await selfTest(objs, ini, iniText, cf));
const errs = await check(objs, ini, iniText, cf);
for (const o of objs) console.log(`${errs.some((e) => e.startsWith(`${o.kind}/${o.metadata.name}:`)) ? "INVALID" : "valid"}: ${o.apiVersion} ${o.kind} ${o.metadata.name}`);
for (const e of errs) console.log(`FAIL: ${e}`);
process.exit(errs.length ? 1 : 0);
