// Offline checks of the rendered deploy/ manifests (run by deploy/validate.sh):
//   node check.mjs BASE.yaml KSERVE.yaml      (the output of kubectl kustomize deploy/, deploy/kserve/)
// 1. schema: every Kubernetes object through the npm package kubernetes-models (the OpenAPI
//    schemas of Kubernetes: types, enums, formats, required fields); KServe objects through our
//    structural checks plus kubernetes-models' Container schema for their containers;
// 2. types: every object as a TypeScript literal of its kubernetes-types type (or of our KServe
//    types, kserve.ts), compiled with tsc --strict: unknown (misspelt) fields fail here, which
//    the OpenAPI schemas allow;
// 3. policy: what deploy/README.md promises (probes, limits vs workers, grace vs drain,
//    hardening, selectors, KServe v2 wiring);
// 4. self-test: deliberately broken copies must be rejected by the check meant to catch them.
// Prints "ok - ..." / "not ok - ..." lines; exit status 1 if any failed.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import ts from "typescript";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Service } from "kubernetes-models/v1/Service";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Container } from "kubernetes-models/v1/Container";

const HERE = path.dirname(fileURLToPath(import.meta.url));
let failed = 0;
function report(name, errors) {
    if (errors.length === 0) console.log(`ok - ${name}`);
    else {
        failed++;
        console.log(`not ok - ${name}`);
        for (const e of errors.slice(0, 12)) console.log(`    ${e}`);
    }
}
const clone = (o) => JSON.parse(JSON.stringify(o));
const id = (o) => `${o.kind}/${o.metadata?.name}`;

function load(file) {
    return YAML.parseAllDocuments(readFileSync(file, "utf8"))
        .map((d) => {
            if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
            return d.toJS();
        })
        .filter((o) => o !== null);
}

// ---------------------------------------------------------------- 1. schemas
const MODELS = {
    "apps/v1 Deployment": Deployment,
    "v1 Service": Service,
    "autoscaling/v2 HorizontalPodAutoscaler": HorizontalPodAutoscaler,
    "policy/v1 PodDisruptionBudget": PodDisruptionBudget,
};
const KSERVE = {
    "serving.kserve.io/v1alpha1 ServingRuntime": "ServingRuntime",
    "serving.kserve.io/v1beta1 InferenceService": "InferenceService",
};
const KSERVE_ONLY = ["modelFormat", "runtime", "storageUri", "runtimeVersion", "protocolVersion"];

function containerErrors(c, where) {
    try {
        new Container(c).validate();
        return [];
    } catch (e) {
        return [`${where}: ${e.message}`];
    }
}
function schemaErrors(o) {
    const key = `${o.apiVersion} ${o.kind}`;
    if (MODELS[key]) {
        try {
            new MODELS[key](o).validate();
            return [];
        } catch (e) {
            return [`${id(o)}: ${e.message}`];
        }
    }
    if (!KSERVE[key]) return [`${id(o)}: unexpected apiVersion/kind "${key}"`];
    const errs = [];
    const need = (cond, msg) => cond || errs.push(`${id(o)}: ${msg}`);
    need(typeof o.metadata?.name === "string" && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.metadata.name),
        "metadata.name must be a DNS-1123 label");
    if (o.kind === "ServingRuntime") {
        const cs = o.spec?.containers;
        need(Array.isArray(cs) && cs.length > 0, "spec.containers must be a non-empty list");
        (cs || []).forEach((c, i) => errs.push(...containerErrors(c, `${id(o)} spec.containers[${i}]`)));
        for (const f of o.spec?.supportedModelFormats || [])
            need(typeof f.name === "string" && f.name.length > 0, "supportedModelFormats[].name required");
    } else {
        const m = o.spec?.predictor?.model;
        need(m && typeof m.modelFormat?.name === "string", "spec.predictor.model.modelFormat.name required");
        if (m) {
            const c = { name: "kserve-container", ...m };
            for (const k of KSERVE_ONLY) delete c[k];
            errs.push(...containerErrors(c, `${id(o)} spec.predictor.model`));
        }
        for (const k of ["minReplicas", "maxReplicas", "scaleTarget"]) {
            const v = o.spec?.predictor?.[k];
            need(v === undefined || (Number.isInteger(v) && v >= 0), `spec.predictor.${k} must be an integer >= 0`);
        }
    }
    return errs;
}

// ---------------------------------------------------------------- 2. types (tsc)
const TYPES = {
    "apps/v1 Deployment": 'import("kubernetes-types/apps/v1").Deployment',
    "v1 Service": 'import("kubernetes-types/core/v1").Service',
    "autoscaling/v2 HorizontalPodAutoscaler": 'import("kubernetes-types/autoscaling/v2").HorizontalPodAutoscaler',
    "policy/v1 PodDisruptionBudget": 'import("kubernetes-types/policy/v1").PodDisruptionBudget',
    "serving.kserve.io/v1alpha1 ServingRuntime": 'import("./kserve").ServingRuntime',
    "serving.kserve.io/v1beta1 InferenceService": 'import("./kserve").InferenceService',
};
// sets: {name: [objects]} -> {name: [diagnostic strings]}, all in one tsc program.
function typeErrors(sets) {
    const files = {};
    const out = {};
    for (const [name, objs] of Object.entries(sets)) {
        const f = path.join(HERE, `__rendered_${name}.ts`);
        out[name] = [];
        files[f] = objs
            .map((o, i) => {
                const t = TYPES[`${o.apiVersion} ${o.kind}`];
                if (!t) out[name].push(`${id(o)}: no TypeScript type for ${o.apiVersion} ${o.kind}`);
                return `// ${id(o)}\nexport const m${i}: ${t || "never"} = ${JSON.stringify(o, null, 2)};\n`;
            })
            .join("\n");
    }
    const options = {
        strict: true, noEmit: true, target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS,
        moduleResolution: ts.ModuleResolutionKind.Node10, types: [], skipLibCheck: true,
    };
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (f, lang, ...rest) =>
        files[path.resolve(f)] !== undefined
            ? ts.createSourceFile(f, files[path.resolve(f)], lang)
            : getSourceFile(f, lang, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (f) => files[path.resolve(f)] !== undefined || fileExists(f);
    const prog = ts.createProgram(Object.keys(files), options, host);
    const diags = ts.getPreEmitDiagnostics(prog);
    for (const d of diags) {
        const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
        const fname = d.file ? path.resolve(d.file.fileName) : "";
        const name = Object.keys(sets).find((n) => path.join(HERE, `__rendered_${n}.ts`) === fname);
        let where = d.file ? path.basename(d.file.fileName) : "tsc";
        if (d.file && d.start !== undefined) {
            const { line } = d.file.getLineAndCharacterOfPosition(d.start);
            const text = d.file.text.split("\n");
            let hdr = line;
            while (hdr > 0 && !text[hdr].startsWith("// ")) hdr--;
            where = `${text[hdr].slice(3)} (line ${line + 1})`;
        }
        (out[name] || (out.__other = out.__other || [])).push(`${where}: ${msg}`);
    }
    return out;
}

// ---------------------------------------------------------------- 3. policy
function cpu(q) {
    const s = String(q);
    return s.endsWith("m") ? Number(s.slice(0, -1)) / 1000 : Number(s);
}
function bytes(q) {
    const m = /^([0-9.]+)(Ki|Mi|Gi|K|M|G)?$/.exec(String(q));
    if (!m) return NaN;
    const mul = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 }[m[2]] || 1;
    return Number(m[1]) * mul;
}
const envOf = (c) => Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
const matches = (sel, labels) => Object.entries(sel || {}).every(([k, v]) => labels?.[k] === v);

// Hardening, probes, workers: shared by the Deployment's container and the ServingRuntime's.
function containerPolicy(c, pod, errs, where) {
    const e = envOf(c);
    const sc = c.securityContext || {};
    const psc = pod?.securityContext || {};
    const need = (cond, msg) => cond || errs.push(`${where}: ${msg}`);
    const port = (c.ports || [])[0]?.containerPort;
    need(port === 8080, `serves on containerPort 8080 (has ${port})`);
    need((e.ONESPIKE_PORT ?? "8080") === String(port), `ONESPIKE_PORT (${e.ONESPIKE_PORT}) = containerPort`);
    need(e.ONESPIKE_LISTEN === "0.0.0.0", `ONESPIKE_LISTEN=0.0.0.0 (has ${e.ONESPIKE_LISTEN})`);
    const lim = c.resources?.limits || {}, req = c.resources?.requests || {};
    need(lim.cpu && req.cpu && lim.memory && req.memory, "CPU and memory requests and limits set");
    need(cpu(req.cpu) <= cpu(lim.cpu) && bytes(req.memory) <= bytes(lim.memory), "requests <= limits");
    need(Number.isInteger(cpu(lim.cpu)) && e.ONESPIKE_WORKERS === String(cpu(lim.cpu)),
        `ONESPIKE_WORKERS (${e.ONESPIKE_WORKERS}) = CPU limit (${lim.cpu}) in whole cores`);
    const portOk = (p) => p === 8080 || (c.ports || []).some((x) => x.name === p && x.containerPort === 8080);
    const probe = (p, pathWanted) => p?.httpGet?.path === pathWanted && portOk(p.httpGet.port);
    need(probe(c.readinessProbe, "/v2/health/ready"), "readinessProbe GET /v2/health/ready on 8080");
    need(probe(c.livenessProbe, "/v2/health/live"), "livenessProbe GET /v2/health/live on 8080");
    need((sc.runAsNonRoot ?? psc.runAsNonRoot) === true, "runAsNonRoot: true");
    const uid = sc.runAsUser ?? psc.runAsUser;
    need(uid === undefined || uid === 10001, `runAsUser is the image's 10001 (has ${uid})`);
    need(sc.readOnlyRootFilesystem === true, "readOnlyRootFilesystem: true");
    need(sc.allowPrivilegeEscalation === false, "allowPrivilegeEscalation: false");
    need((sc.capabilities?.drop || []).includes("ALL") && !(sc.capabilities?.add || []).length,
        "capabilities: drop ALL, add none");
    need((sc.seccompProfile ?? psc.seccompProfile)?.type === "RuntimeDefault", "seccompProfile RuntimeDefault");
    need(!sc.privileged, "not privileged");
    return e;
}

function policyChecks(base, kserve) {
    const results = [];
    const kinds = (objs) => objs.map((o) => o.kind).sort().join(",");
    results.push(["base renders Deployment, HorizontalPodAutoscaler, PodDisruptionBudget, Service",
        kinds(base) === "Deployment,HorizontalPodAutoscaler,PodDisruptionBudget,Service" ? [] : [`got ${kinds(base)}`]]);
    results.push(["kserve renders InferenceService, ServingRuntime",
        kinds(kserve) === "InferenceService,ServingRuntime" ? [] : [`got ${kinds(kserve)}`]]);
    const get = (objs, kind) => objs.find((o) => o.kind === kind) || {};
    const dep = get(base, "Deployment"), svc = get(base, "Service");
    const hpa = get(base, "HorizontalPodAutoscaler"), pdb = get(base, "PodDisruptionBudget");
    const pod = dep.spec?.template?.spec || {};
    const c = (pod.containers || [])[0] || {};
    const podLabels = dep.spec?.template?.metadata?.labels || {};

    let errs = [];
    if (dep.spec?.replicas !== 2) errs.push(`replicas 2 (has ${dep.spec?.replicas})`);
    if (!matches(dep.spec?.selector?.matchLabels, podLabels)) errs.push("selector matches the pod labels");
    const st = c.startupProbe?.httpGet;
    if (!st || !["/v2/health/ready", "/v2/health/live"].includes(st.path)) errs.push("startupProbe on /v2/health/*");
    const e = containerPolicy(c, pod, errs, id(dep));
    results.push(["Deployment: 2 replicas, probes, requests/limits, workers = CPU limit, non-root, read-only, no capabilities, seccomp", errs]);

    errs = [];
    const pre = c.lifecycle?.preStop;
    let preMs = NaN;
    if (pre?.sleep) preMs = pre.sleep.seconds * 1000;
    else if (pre?.exec?.command?.[0] === "/bin/sleep" && pre.exec.command.length === 2)
        preMs = Number(pre.exec.command[1]) * 1000;
    if (!(preMs >= 0)) errs.push("preStop is an exec of /bin/sleep SECONDS or a sleep action");
    const drain = Number(e.ONESPIKE_DRAIN_MS ?? 10000);
    const grace = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
    if (!(grace > preMs + drain + 1000))
        errs.push(`terminationGracePeriodSeconds (${grace} ms) > preStop (${preMs} ms) + ONESPIKE_DRAIN_MS (${drain}) + 1 s flush`);
    results.push(["Deployment: preStop, then a grace period longer than preStop + drain", errs]);

    errs = [];
    if (!matches(svc.spec?.selector, podLabels) || !Object.keys(svc.spec?.selector || {}).length)
        errs.push("Service selector matches the pod labels");
    for (const p of svc.spec?.ports || [])
        if (!(c.ports || []).some((x) => x.name === p.targetPort || x.containerPort === p.targetPort))
            errs.push(`Service targetPort ${p.targetPort} is a container port`);
    const tr = hpa.spec?.scaleTargetRef || {};
    if (tr.kind !== "Deployment" || tr.name !== dep.metadata?.name || tr.apiVersion !== "apps/v1")
        errs.push("HPA targets the Deployment");
    const m = (hpa.spec?.metrics || []).find((x) => x.type === "Resource" && x.resource?.name === "cpu");
    if (!m || m.resource.target?.type !== "Utilization") errs.push("HPA scales on CPU utilization");
    if (!(hpa.spec?.minReplicas >= 2 && hpa.spec?.maxReplicas > hpa.spec?.minReplicas)) errs.push("HPA 2 <= min < max");
    if (!matches(pdb.spec?.selector?.matchLabels, podLabels)) errs.push("PDB selects the pods");
    if (!(pdb.spec?.minAvailable >= 1 && pdb.spec.minAvailable < dep.spec?.replicas))
        errs.push("PDB 1 <= minAvailable < replicas (a node drain can proceed)");
    results.push(["Service, HPA and PDB select/target the Deployment", errs]);

    errs = [];
    const sr = get(kserve, "ServingRuntime"), isvc = get(kserve, "InferenceService");
    const model = isvc.spec?.predictor?.model || {};
    const rc = (sr.spec?.containers || [])[0] || {};
    if (model.runtime !== sr.metadata?.name) errs.push(`InferenceService runtime "${model.runtime}" = ServingRuntime "${sr.metadata?.name}"`);
    if (!(sr.spec?.supportedModelFormats || []).some((f) => f.name === model.modelFormat?.name &&
        (!model.modelFormat?.version || f.version === model.modelFormat.version)))
        errs.push("the model format is one the runtime supports");
    if (model.protocolVersion !== "v2") errs.push("InferenceService protocolVersion v2");
    if (!(sr.spec?.protocolVersions || []).includes("v2")) errs.push("ServingRuntime protocolVersions has v2");
    if (rc.name !== "kserve-container") errs.push("the runtime's first container is kserve-container");
    const args = (rc.args || []).join(" ");
    if (!/--model \{\{\.Name\}\}=\//.test(args)) errs.push("the runtime serves the model as {{.Name}} (/v2/models/<isvc>/...)");
    if (rc.image !== c.image) errs.push(`the runtime image (${rc.image}) = the Deployment's (${c.image})`);
    containerPolicy(rc, {}, errs, id(sr));
    results.push(["KServe: InferenceService -> ServingRuntime, v2 protocol on 8080, same image and hardening", errs]);
    return results;
}

// ---------------------------------------------------------------- main
const [baseFile, kserveFile] = process.argv.slice(2);
if (!baseFile || !kserveFile) {
    console.error("usage: node check.mjs BASE.yaml KSERVE.yaml");
    process.exit(2);
}
const base = load(baseFile), kserve = load(kserveFile);
const all = [...base, ...kserve];

for (const o of all) report(`schema (kubernetes-models${KSERVE[`${o.apiVersion} ${o.kind}`] ? " Container + ours" : ""}): ${id(o)}`, schemaErrors(o));

// Broken copies for the self-test (4.), type-checked in the same tsc program as the real ones.
const depIdx = base.findIndex((o) => o.kind === "Deployment");
const broken = (objs, i, f) => objs.map((o, j) => (j === i ? (() => { const x = clone(o); f(x); return x; })() : o));
const typoProbe = broken(base, depIdx, (d) => {
    const c = d.spec.template.spec.containers[0];
    c.readinessProbee = c.readinessProbe;
    delete c.readinessProbe;
});
const isvcIdx = kserve.findIndex((o) => o.kind === "InferenceService");
const badProtocol = broken(kserve, isvcIdx, (o) => (o.spec.predictor.model.protocolVersion = "v3"));
const typoIsvc = broken(kserve, isvcIdx, (o) => (o.spec.predictor.model.storageURI = "pvc://x/m.safetensors"));
const types = typeErrors({ base, kserve, typoProbe, badProtocol, typoIsvc });
report("types (kubernetes-types + tsc --strict): base", types.base);
report("types (our kserve.ts + kubernetes-types, tsc --strict): kserve", types.kserve);
if (types.__other) report("types: no other diagnostics", types.__other);

for (const [name, errs] of policyChecks(base, kserve)) report(`policy: ${name}`, errs);

// 4. self-test: each broken copy must be rejected by its checker.
const rejects = (name, errs) => {
    report(`self-test: ${name} is rejected`, errs.length ? [] : ["it was accepted"]);
    if (process.env.VERBOSE) for (const e of errs.slice(0, 3)) console.log(`    (${e})`);
};
rejects("a misspelt container field (readinessProbee) [tsc]", types.typoProbe);
rejects("InferenceService protocolVersion v3 [tsc, our types]", types.badProtocol);
rejects("a misspelt InferenceService field (storageURI) [tsc, our types]", types.typoIsvc);
rejects("containerPort as a string [kubernetes-models]", schemaErrors(broken(base, depIdx, (d) => {
    d.spec.template.spec.containers[0].ports[0].containerPort = "8080";
})[depIdx]));
rejects("a CPU limit that is not a quantity [kubernetes-models]", schemaErrors(broken(base, depIdx, (d) => {
    d.spec.template.spec.containers[0].resources.limits.cpu = { cores: 2 };
})[depIdx]));
const srIdx = kserve.findIndex((o) => o.kind === "ServingRuntime");
rejects("a ServingRuntime container port as a string [kubernetes-models Container]", schemaErrors(broken(kserve, srIdx, (o) => {
    o.spec.containers[0].ports[0].containerPort = "8080";
})[srIdx]));
const policyFails = (b, k) => policyChecks(b, k).flatMap(([, errs]) => errs);
rejects("ONESPIKE_WORKERS above the CPU limit [policy]", policyFails(broken(base, depIdx, (d) => {
    d.spec.template.spec.containers[0].env.find((x) => x.name === "ONESPIKE_WORKERS").value = "4";
}), kserve));
rejects("a grace period shorter than preStop + drain [policy]", policyFails(broken(base, depIdx, (d) => {
    d.spec.template.spec.terminationGracePeriodSeconds = 15;
}), kserve));
rejects("a writable root filesystem [policy]", policyFails(broken(base, depIdx, (d) => {
    d.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false;
}), kserve));

console.log(failed ? `check.mjs: ${failed} check(s) failed` : "check.mjs: all checks passed");
process.exit(failed ? 1 : 0);
