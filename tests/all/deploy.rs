//! `deploy/kubernetes/`: the manifests agree with each other, with the
//! shim's contract (its environment variables and health endpoints) and
//! with their page.
//!
//! Nothing here talks to a cluster. These checks catch what a cluster would
//! only show at run time: a renamed port, label, Service or RuntimeClass, a
//! probe on the wrong listener, a grace period too short for the drain.
//! Each check returns what is wrong instead of panicking, so
//! `every_check_can_fail` can break the manifests one way per check and see
//! each break caught.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The runtime type the node's containerd config names, from which it finds
/// `containerd-shim-mayfly-v1`.
const RUNTIME_TYPE: &str = "io.containerd.mayfly.v1";

/// The handler every node's containerd config defines for that runtime type.
const HANDLER: &str = "mayfly";

/// The app's container, as `kubectl set image deployment/NAME app=...` in
/// the page names it.
const APP_CONTAINER: &str = "app";

/// The shim's drain time when `MAYFLY_SHUTDOWN_GRACE` is not set.
const DEFAULT_SHUTDOWN_GRACE: u64 = 30;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// One YAML document of one file.
#[derive(Clone)]
struct Doc {
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("?")
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("?")
    }

    fn root(&self) -> Node<'_> {
        Node {
            doc: self,
            path: String::new(),
            value: &self.value,
        }
    }

    fn get(&self, path: &str) -> Result<Node<'_>, String> {
        self.root().get(path)
    }
}

/// A value inside a document, with where it is, for messages such as
/// ``deployment.yaml: Deployment `hello`, spec.replicas: ...``.
#[derive(Clone)]
struct Node<'a> {
    doc: &'a Doc,
    path: String,
    value: &'a Value,
}

impl<'a> Node<'a> {
    fn problem(&self, what: impl std::fmt::Display) -> String {
        format!(
            "{}: {} `{}`, {}: {what}",
            self.doc.file,
            self.doc.kind(),
            self.doc.name(),
            if self.path.is_empty() {
                "(document)"
            } else {
                &self.path
            },
        )
    }

    fn child(&self, segment: &str, value: &'a Value) -> Node<'a> {
        let path = match (self.path.is_empty(), segment.starts_with('[')) {
            (true, _) | (false, true) => format!("{}{segment}", self.path),
            (false, false) => format!("{}.{segment}", self.path),
        };
        Node {
            doc: self.doc,
            path,
            value,
        }
    }

    /// The value at a dotted path of mapping keys (`spec.template.spec`).
    fn get(&self, path: &str) -> Result<Node<'a>, String> {
        let mut node = self.clone();
        for key in path.split('.') {
            let Some(value) = node.value.get(key) else {
                return Err(node.child(key, &Value::Null).problem("missing"));
            };
            node = node.child(key, value);
        }
        Ok(node)
    }

    fn opt(&self, path: &str) -> Option<Node<'a>> {
        self.get(path).ok()
    }

    fn str(&self) -> Result<&'a str, String> {
        self.value
            .as_str()
            .ok_or_else(|| self.problem(format!("should be a string, found {}", self.value)))
    }

    fn u64(&self) -> Result<u64, String> {
        self.value
            .as_u64()
            .ok_or_else(|| self.problem(format!("should be a whole number, found {}", self.value)))
    }

    fn items(&self) -> Result<Vec<Node<'a>>, String> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.problem(format!("should be a list, found {}", self.value)))?;
        Ok(items
            .iter()
            .enumerate()
            .map(
                |(index, item)| match item.get("name").and_then(Value::as_str) {
                    Some(name) => self.child(&format!("[{name}]"), item),
                    None => self.child(&format!("[{index}]"), item),
                },
            )
            .collect())
    }

    /// The element of a list whose `name` is `name`.
    fn named(&self, name: &str) -> Result<Node<'a>, String> {
        self.items()?
            .into_iter()
            .find(|item| item.value.get("name").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| self.problem(format!("has no entry named `{name}`")))
    }

    /// A mapping of strings to strings, such as labels.
    fn labels(&self) -> Result<BTreeMap<&'a str, &'a str>, String> {
        let map = self
            .value
            .as_object()
            .ok_or_else(|| self.problem(format!("should be a mapping, found {}", self.value)))?;
        map.iter()
            .map(|(key, value)| Ok((key.as_str(), self.child(key, value).str()?)))
            .collect()
    }
}

struct Manifests {
    docs: Vec<Doc>,
    /// `deploy/kubernetes/README.md`.
    readme: String,
}

impl Manifests {
    fn load() -> Self {
        let dir = dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no *.yaml files in {}", dir.display());
        let mut docs = Vec::new();
        for path in files {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("reading {file}: {err}"));
            let values: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|err| panic!("{file} is not valid YAML: {err}"));
            // An empty document (a stray `---`) is not an object; kubectl
            // skips it too.
            docs.extend(
                values
                    .into_iter()
                    .filter(|value| !value.is_null())
                    .map(|value| Doc {
                        file: file.clone(),
                        value,
                    }),
            );
        }
        let readme = std::fs::read_to_string(dir.join("README.md"))
            .unwrap_or_else(|err| panic!("reading deploy/kubernetes/README.md: {err}"));
        Self { docs, readme }
    }

    fn of_kind<'s>(&'s self, kind: &str) -> impl Iterator<Item = &'s Doc> + use<'s> {
        let kind = kind.to_owned();
        self.docs.iter().filter(move |doc| doc.kind() == kind)
    }

    fn one(&self, kind: &str) -> Result<&Doc, String> {
        let found: Vec<&Doc> = self.of_kind(kind).collect();
        match found[..] {
            [doc] => Ok(doc),
            _ => Err(format!(
                "expected exactly one {kind} in deploy/kubernetes/*.yaml, found {}: {:?}",
                found.len(),
                found
                    .iter()
                    .map(|doc| format!("{}: {}", doc.file, doc.name()))
                    .collect::<Vec<_>>()
            )),
        }
    }

    fn find(&self, kind: &str, name: &str) -> Result<&Doc, String> {
        self.of_kind(kind)
            .find(|doc| doc.name() == name)
            .ok_or_else(|| format!("no {kind} named `{name}` in deploy/kubernetes/*.yaml"))
    }

    /// The Deployment that Mayfly runs: the one with a `runtimeClassName`.
    fn app(&self) -> Result<&Doc, String> {
        let found: Vec<&Doc> = self
            .of_kind("Deployment")
            .filter(|doc| doc.get("spec.template.spec.runtimeClassName").is_ok())
            .collect();
        match found[..] {
            [doc] => Ok(doc),
            _ => Err(format!(
                "expected exactly one Deployment with spec.template.spec.runtimeClassName \
                 (the Mayfly app), found {}",
                found.len()
            )),
        }
    }

    fn app_container(&self) -> Result<Node<'_>, String> {
        self.app()?
            .get("spec.template.spec.containers")?
            .named(APP_CONTAINER)
    }
}

/// The value of an environment variable a container sets.
fn env<'a>(container: &Node<'a>, name: &str) -> Result<Node<'a>, String> {
    container.get("env")?.named(name)?.get("value")
}

fn env_str<'a>(container: &Node<'a>, name: &str) -> Result<(Node<'a>, &'a str), String> {
    let value = env(container, name)?;
    let text = value.str()?;
    Ok((value, text))
}

fn listen_port(container: &Node<'_>, name: &str) -> Result<u16, String> {
    let (node, text) = env_str(container, name)?;
    let addr: SocketAddr = text
        .parse()
        .map_err(|err| node.problem(format!("`{text}` is not an address: {err}")))?;
    Ok(addr.port())
}

/// The port number a probe's or Service's `port`/`targetPort` refers to in
/// a container: a number as it is, a name through the container's ports.
fn resolve_port(containers: &[Node<'_>], port: &Node<'_>) -> Result<u64, String> {
    if let Some(number) = port.value.as_u64() {
        return Ok(number);
    }
    let name = port.str()?;
    for container in containers {
        if let Some(found) = container
            .opt("ports")
            .and_then(|ports| ports.named(name).ok())
        {
            return found.get("containerPort")?.u64();
        }
    }
    Err(port.problem(format!(
        "names port `{name}`, which no container of the pod declares"
    )))
}

fn subset(small: &BTreeMap<&str, &str>, big: &BTreeMap<&str, &str>) -> bool {
    small.iter().all(|(key, value)| big.get(key) == Some(value))
}

type Check = fn(&Manifests) -> Result<(), String>;

fn every_document_is_a_named_object(m: &Manifests) -> Result<(), String> {
    for doc in &m.docs {
        for field in ["apiVersion", "kind", "metadata.name"] {
            let value = doc.get(field)?;
            if value.str()?.is_empty() {
                return Err(value.problem("is empty"));
            }
        }
    }
    Ok(())
}

fn the_app_runs_on_the_mayfly_runtime_class(m: &Manifests) -> Result<(), String> {
    let class = m.one("RuntimeClass")?;
    let handler = class.get("handler")?;
    if handler.str()? != HANDLER {
        return Err(handler.problem(format!(
            "should be `{HANDLER}`, the runtime name in the nodes' containerd config"
        )));
    }
    let chosen = m.app()?.get("spec.template.spec.runtimeClassName")?;
    if chosen.str()? != class.name() {
        return Err(chosen.problem(format!(
            "names RuntimeClass `{}`, but the one defined is `{}` ({})",
            chosen.str()?,
            class.name(),
            class.file
        )));
    }
    // Pods only go where the shim is; the page must say how nodes get there.
    if let Some(selector) = class.root().opt("scheduling.nodeSelector") {
        for (key, value) in selector.labels()? {
            let command = format!("{key}={value}");
            if !m.readme.contains("kubectl label node") || !m.readme.contains(&command) {
                return Err(selector.problem(format!(
                    "README.md never says to label nodes with `kubectl label node NODE {command}`"
                )));
            }
        }
    }
    Ok(())
}

fn deployments_select_their_own_pods(m: &Manifests) -> Result<(), String> {
    for deployment in m.of_kind("Deployment") {
        let selector = deployment.get("spec.selector.matchLabels")?;
        let wanted = selector.labels()?;
        let labels = deployment.get("spec.template.metadata.labels")?.labels()?;
        if wanted.is_empty() || !subset(&wanted, &labels) {
            return Err(selector.problem(format!(
                "{wanted:?} does not match the pod template's labels {labels:?}"
            )));
        }
    }
    Ok(())
}

fn services_reach_a_named_container_port(m: &Manifests) -> Result<(), String> {
    for service in m.of_kind("Service") {
        let selector = service.get("spec.selector")?;
        let wanted = selector.labels()?;
        let selected: Vec<&Doc> = m
            .of_kind("Deployment")
            .filter(|deployment| {
                deployment
                    .get("spec.template.metadata.labels")
                    .and_then(|labels| labels.labels())
                    .is_ok_and(|labels| !wanted.is_empty() && subset(&wanted, &labels))
            })
            .collect();
        let [deployment] = selected[..] else {
            return Err(selector.problem(format!(
                "{wanted:?} should select the pods of exactly one Deployment, selects {}",
                selected.len()
            )));
        };
        let containers = deployment.get("spec.template.spec.containers")?.items()?;
        for port in service.get("spec.ports")?.items()? {
            // Without a targetPort, the Service's port is the pod's.
            let target = port.get("targetPort").or_else(|_| port.get("port"))?;
            let number = resolve_port(&containers, &target)?;
            let declared = containers.iter().any(|container| {
                container.opt("ports").is_some_and(|ports| {
                    ports.items().is_ok_and(|ports| {
                        ports.iter().any(|declared| {
                            declared
                                .get("containerPort")
                                .is_ok_and(|p| p.value.as_u64() == Some(number))
                        })
                    })
                })
            });
            if !declared {
                return Err(target.problem(format!(
                    "port {number} is not a container port of Deployment `{}`",
                    deployment.name()
                )));
            }
        }
    }
    let app = m.app()?;
    let app_labels = app.get("spec.template.metadata.labels")?.labels()?;
    let reaches_app = m.of_kind("Service").any(|service| {
        service
            .get("spec.selector")
            .and_then(|selector| selector.labels())
            .is_ok_and(|wanted| subset(&wanted, &app_labels))
    });
    if !reaches_app {
        return Err(app
            .root()
            .problem("no Service selects this Deployment's pods"));
    }
    Ok(())
}

fn probes_ask_the_health_listener(m: &Manifests) -> Result<(), String> {
    let container = m.app_container()?;
    let containers = [container.clone()];
    let health = u64::from(listen_port(&container, "MAYFLY_HEALTH_LISTEN")?);
    let wanted = [
        ("readinessProbe", Some("/readyz")),
        ("livenessProbe", Some("/healthz")),
        ("startupProbe", None),
    ];
    for (probe_name, path) in wanted {
        let probe = match (container.get(probe_name), path) {
            (Ok(probe), _) => probe,
            (Err(_), None) => continue,
            (Err(missing), Some(_)) => return Err(missing),
        };
        // No shell, no exec: an HTTP GET is the only probe that can work.
        let http = probe.get("httpGet").map_err(|_| {
            probe.problem("must be an httpGet probe: a Mayfly container has nothing to exec")
        })?;
        let probe_path = http.get("path")?;
        if let Some(path) = path
            && probe_path.str()? != path
        {
            return Err(probe_path.problem(format!("should be `{path}`")));
        }
        let port = http.get("port")?;
        let number = resolve_port(&containers, &port)?;
        if number != health {
            return Err(port.problem(format!(
                "is port {number}, but MAYFLY_HEALTH_LISTEN serves the health endpoints on {health}"
            )));
        }
    }
    Ok(())
}

fn the_app_listens_on_its_http_port(m: &Manifests) -> Result<(), String> {
    let container = m.app_container()?;
    let listen = listen_port(&container, "MAYFLY_LISTEN")?;
    let http = container
        .get("ports")?
        .named("http")?
        .get("containerPort")?;
    if http.u64()? != u64::from(listen) {
        return Err(http.problem(format!(
            "is {}, but MAYFLY_LISTEN makes the app listen on {listen}",
            http.u64()?
        )));
    }
    let health = listen_port(&container, "MAYFLY_HEALTH_LISTEN")?;
    if health == listen {
        return Err(env(&container, "MAYFLY_HEALTH_LISTEN")?
            .problem("is on the same port as MAYFLY_LISTEN; both cannot bind it"));
    }
    Ok(())
}

fn the_key_value_url_names_the_redis_service(m: &Manifests) -> Result<(), String> {
    let container = m.app_container()?;
    let (node, url) = env_str(&container, "MAYFLY_KEY_VALUE_URL")?;
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .ok_or_else(|| node.problem(format!("`{url}` is not a redis:// URL")))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => {
            let port: u64 = port
                .parse()
                .map_err(|_| node.problem(format!("`{url}` has no valid port")))?;
            (host, port)
        }
        None => (host_port, 6379),
    };
    // `mayfly-redis` or `mayfly-redis.NAMESPACE.svc...`: the Service's name
    // is the first label.
    let name = host.split('.').next().unwrap_or_default();
    let service = m
        .find("Service", name)
        .map_err(|err| node.problem(format!("host `{host}` of `{url}`: {err}")))?;
    let ports = service.get("spec.ports")?.items()?;
    if !ports
        .iter()
        .any(|p| p.get("port").is_ok_and(|p| p.value.as_u64() == Some(port)))
    {
        return Err(node.problem(format!(
            "`{url}` uses port {port}, which Service `{name}` ({}) does not expose",
            service.file
        )));
    }
    Ok(())
}

fn the_autoscaler_scales_the_app(m: &Manifests) -> Result<(), String> {
    let app = m.app()?;
    let mut found = false;
    for hpa in m.of_kind("HorizontalPodAutoscaler") {
        found = true;
        let target = hpa.get("spec.scaleTargetRef")?;
        for (field, wanted) in [
            ("apiVersion", "apps/v1"),
            ("kind", "Deployment"),
            ("name", app.name()),
        ] {
            let value = target.get(field)?;
            if value.str()? != wanted {
                return Err(value.problem(format!(
                    "should be `{wanted}`, to scale Deployment `{}` ({})",
                    app.name(),
                    app.file
                )));
            }
        }
        let min = hpa.get("spec.minReplicas")?.u64()?;
        let max = hpa.get("spec.maxReplicas")?;
        if max.u64()? < min {
            return Err(max.problem(format!("is below minReplicas {min}")));
        }
        // Utilisation is measured against the request: without one, the
        // autoscaler has nothing to compare with and does nothing.
        for metric in hpa.get("spec.metrics")?.items()? {
            if let Some(resource) = metric.opt("resource.name") {
                let resource = resource.str()?;
                m.app_container()?
                    .get(&format!("resources.requests.{resource}"))
                    .map_err(|err| {
                        format!("{err} ({} scales on {resource} utilisation)", hpa.file)
                    })?;
            }
        }
    }
    if !found {
        return Err("no HorizontalPodAutoscaler in deploy/kubernetes/*.yaml".to_string());
    }
    Ok(())
}

fn termination_outlasts_the_drain(m: &Manifests) -> Result<(), String> {
    let app = m.app()?;
    let container = m.app_container()?;
    let period = app.get("spec.template.spec.terminationGracePeriodSeconds")?;
    let sleep = container.get("lifecycle.preStop.sleep.seconds")?.u64()?;
    let grace = match env_str(&container, "MAYFLY_SHUTDOWN_GRACE") {
        Ok((node, text)) => text
            .parse::<u64>()
            .map_err(|_| node.problem(format!("`{text}` is not a whole number of seconds")))?,
        Err(_) => DEFAULT_SHUTDOWN_GRACE,
    };
    if period.u64()? <= sleep + grace {
        return Err(period.problem(format!(
            "is {}s, not more than the preStop sleep ({sleep}s) plus MAYFLY_SHUTDOWN_GRACE \
             ({grace}s): the kubelet would kill requests still draining",
            period.u64()?
        )));
    }
    Ok(())
}

fn rollouts_keep_every_pod_ready(m: &Manifests) -> Result<(), String> {
    let app = m.app()?;
    let kind = app.get("spec.strategy.type")?;
    if kind.str()? != "RollingUpdate" {
        return Err(kind.problem("should be RollingUpdate"));
    }
    let unavailable = app.get("spec.strategy.rollingUpdate.maxUnavailable")?;
    if !matches!(unavailable.value, Value::Number(n) if n.as_u64() == Some(0))
        && unavailable.value.as_str() != Some("0%")
    {
        return Err(unavailable.problem(format!(
            "is {}; it must be 0, so no ready pod stops before its replacement is ready",
            unavailable.value
        )));
    }
    Ok(())
}

fn env_values_are_strings(m: &Manifests) -> Result<(), String> {
    for deployment in m.of_kind("Deployment") {
        for container in deployment.get("spec.template.spec.containers")?.items()? {
            let Some(vars) = container.opt("env") else {
                continue;
            };
            for var in vars.items()? {
                if var.opt("valueFrom").is_some() {
                    continue;
                }
                // Kubernetes refuses `value: 30`; it must be `value: "30"`.
                var.get("value")?.str()?;
            }
        }
    }
    Ok(())
}

fn the_page_documents_what_the_manifests_use(m: &Manifests) -> Result<(), String> {
    let container = m.app_container()?;
    for var in container.get("env")?.items()? {
        let name = var.get("name")?.str()?;
        if !m.readme.contains(name) {
            return Err(var.problem(format!("README.md never mentions {name}")));
        }
    }
    if !m.readme.contains(RUNTIME_TYPE) {
        return Err(format!(
            "README.md never mentions the runtime type {RUNTIME_TYPE}"
        ));
    }
    let class = m.one("RuntimeClass")?;
    let handler = class.get("handler")?.str()?;
    let table = format!("containerd.runtimes.{handler}]");
    if !m.readme.contains(&table) {
        return Err(format!(
            "README.md's containerd config never defines the runtime `{handler}` \
             ({table}) that RuntimeClass `{}` uses",
            class.name()
        ));
    }
    let set_image = format!(
        "kubectl set image deployment/{} {APP_CONTAINER}=",
        m.app()?.name()
    );
    if !m.readme.contains(&set_image) {
        return Err(format!(
            "README.md never shows `{set_image}...` for the Deployment and container defined"
        ));
    }
    Ok(())
}

const CHECKS: &[(&str, Check)] = &[
    ("named objects", every_document_is_a_named_object),
    ("runtime class", the_app_runs_on_the_mayfly_runtime_class),
    ("deployment selectors", deployments_select_their_own_pods),
    ("services", services_reach_a_named_container_port),
    ("probes", probes_ask_the_health_listener),
    ("http port", the_app_listens_on_its_http_port),
    ("key-value url", the_key_value_url_names_the_redis_service),
    ("autoscaler", the_autoscaler_scales_the_app),
    ("termination", termination_outlasts_the_drain),
    ("rollout", rollouts_keep_every_pod_ready),
    ("env strings", env_values_are_strings),
    ("page", the_page_documents_what_the_manifests_use),
];

#[test]
fn the_manifests_are_consistent() {
    let manifests = Manifests::load();
    let problems: Vec<String> = CHECKS
        .iter()
        .filter_map(|(name, check)| check(&manifests).err().map(|err| format!("{name}: {err}")))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_yaml_file_holds_kubernetes_objects() {
    let manifests = Manifests::load();
    let files: Vec<&str> = manifests.docs.iter().map(|doc| doc.file.as_str()).collect();
    for file in [
        "deployment.yaml",
        "redis.yaml",
        "runtimeclass.yaml",
        "scaling.yaml",
        "service.yaml",
    ] {
        assert!(
            files.contains(&file),
            "{file} holds no object; found {files:?}"
        );
    }
    // redis.yaml is three documents: its volume claim, Deployment and Service.
    let redis: Vec<&str> = manifests
        .docs
        .iter()
        .filter(|doc| doc.file == "redis.yaml")
        .map(Doc::kind)
        .collect();
    assert_eq!(redis, ["PersistentVolumeClaim", "Deployment", "Service"]);
}

/// Breaks the manifests one way at a time and expects each named check to
/// report it, naming the file and the field.
#[test]
fn every_check_can_fail() {
    type Break = fn(&mut Manifests);
    let breaks: &[(&str, Break, &[&str])] = &[
        (
            "named objects",
            |m| remove(doc_mut(m, "Service", "hello"), "/metadata/name"),
            &["service.yaml", "metadata.name", "missing"],
        ),
        (
            "runtime class",
            |m| set(doc_mut(m, "RuntimeClass", "mayfly"), "/handler", "runc"),
            &["runtimeclass.yaml", "handler", "mayfly"],
        ),
        (
            "runtime class",
            |m| set(app_mut(m), "/spec/template/spec/runtimeClassName", "wasm"),
            &["deployment.yaml", "runtimeClassName", "wasm"],
        ),
        (
            "runtime class",
            |m| m.readme = m.readme.replace("kubectl label node", "label"),
            &[
                "runtimeclass.yaml",
                "scheduling.nodeSelector",
                "kubectl label node",
            ],
        ),
        (
            "deployment selectors",
            |m| {
                set(
                    app_mut(m),
                    "/spec/selector/matchLabels/app.kubernetes.io~1name",
                    "other",
                )
            },
            &["deployment.yaml", "spec.selector.matchLabels", "other"],
        ),
        (
            "services",
            |m| {
                let ports = doc_mut(m, "Service", "hello").pointer_mut("/spec/ports/0");
                ports.unwrap()["targetPort"] = "web".into();
            },
            &["service.yaml", "targetPort", "`web`"],
        ),
        (
            "services",
            |m| {
                set(
                    doc_mut(m, "Service", "hello"),
                    "/spec/selector/app.kubernetes.io~1name",
                    "mayfly-redis",
                )
            },
            &["service.yaml", "spec.selector", "exactly one Deployment"],
        ),
        (
            "services",
            |m| {
                let ports = doc_mut(m, "Service", "mayfly-redis").pointer_mut("/spec/ports/0");
                ports.unwrap()["targetPort"] = 6380.into();
            },
            &["redis.yaml", "targetPort", "6380"],
        ),
        (
            "probes",
            |m| container_mut(m)["readinessProbe"]["httpGet"]["path"] = "/healthz".into(),
            &["deployment.yaml", "readinessProbe.httpGet.path", "/readyz"],
        ),
        (
            "probes",
            |m| container_mut(m)["livenessProbe"]["httpGet"]["port"] = "http".into(),
            &["deployment.yaml", "livenessProbe.httpGet.port", "8081"],
        ),
        (
            "probes",
            |m| {
                container_mut(m)["readinessProbe"] =
                    serde_json::json!({"exec": {"command": ["true"]}})
            },
            &["deployment.yaml", "readinessProbe", "httpGet"],
        ),
        (
            "probes",
            |m| *env_mut(m, "MAYFLY_HEALTH_LISTEN") = "0.0.0.0:9091".into(),
            &["deployment.yaml", "httpGet.port", "9091"],
        ),
        (
            "http port",
            |m| *env_mut(m, "MAYFLY_LISTEN") = "0.0.0.0:9090".into(),
            &["deployment.yaml", "ports[http].containerPort", "9090"],
        ),
        (
            "http port",
            |m| *env_mut(m, "MAYFLY_HEALTH_LISTEN") = "0.0.0.0:8080".into(),
            &["deployment.yaml", "env[MAYFLY_HEALTH_LISTEN]", "same port"],
        ),
        (
            "key-value url",
            |m| *env_mut(m, "MAYFLY_KEY_VALUE_URL") = "redis://redis:6379".into(),
            &["deployment.yaml", "env[MAYFLY_KEY_VALUE_URL]", "`redis`"],
        ),
        (
            "key-value url",
            |m| *env_mut(m, "MAYFLY_KEY_VALUE_URL") = "redis://mayfly-redis:6380".into(),
            &["deployment.yaml", "env[MAYFLY_KEY_VALUE_URL]", "6380"],
        ),
        (
            "autoscaler",
            |m| {
                set(
                    doc_mut(m, "HorizontalPodAutoscaler", "hello"),
                    "/spec/scaleTargetRef/name",
                    "web",
                )
            },
            &["scaling.yaml", "spec.scaleTargetRef.name", "hello"],
        ),
        (
            "autoscaler",
            |m| remove(container_mut(m), "/resources/requests/cpu"),
            &["deployment.yaml", "resources.requests.cpu", "scaling.yaml"],
        ),
        (
            "termination",
            |m| {
                set(
                    app_mut(m),
                    "/spec/template/spec/terminationGracePeriodSeconds",
                    35,
                )
            },
            &["deployment.yaml", "terminationGracePeriodSeconds", "35s"],
        ),
        (
            "termination",
            |m| *env_mut(m, "MAYFLY_SHUTDOWN_GRACE") = "60".into(),
            &["deployment.yaml", "terminationGracePeriodSeconds", "(60s)"],
        ),
        (
            "termination",
            |m| remove(container_mut(m), "/lifecycle/preStop/sleep"),
            &["deployment.yaml", "lifecycle.preStop.sleep", "missing"],
        ),
        (
            "rollout",
            |m| set(app_mut(m), "/spec/strategy/rollingUpdate/maxUnavailable", 1),
            &["deployment.yaml", "maxUnavailable", "must be 0"],
        ),
        (
            "env strings",
            |m| *env_mut(m, "MAYFLY_SHUTDOWN_GRACE") = 30.into(),
            &[
                "deployment.yaml",
                "env[MAYFLY_SHUTDOWN_GRACE].value",
                "string",
            ],
        ),
        (
            "page",
            |m| m.readme = m.readme.replace("MAYFLY_WORKERS", "WORKERS"),
            &[
                "deployment.yaml",
                "env[MAYFLY_WORKERS]",
                "README.md never mentions MAYFLY_WORKERS",
            ],
        ),
        (
            "page",
            |m| m.readme = m.readme.replace(RUNTIME_TYPE, "io.containerd.wasm.v1"),
            &["README.md", RUNTIME_TYPE],
        ),
        (
            "page",
            |m| m.readme = m.readme.replace("containerd.runtimes.mayfly]", "runtimes]"),
            &["README.md", "containerd.runtimes.mayfly]"],
        ),
        (
            "page",
            |m| m.readme = m.readme.replace("kubectl set image", "kubectl edit"),
            &["README.md", "kubectl set image deployment/hello app="],
        ),
    ];
    let pristine = Manifests::load();
    for (check_name, break_it, expected) in breaks {
        let check = CHECKS
            .iter()
            .find(|(name, _)| name == check_name)
            .map(|(_, check)| check)
            .unwrap();
        check(&pristine).unwrap_or_else(|err| panic!("{check_name} fails unbroken: {err}"));
        let mut broken = Manifests {
            docs: pristine.docs.clone(),
            readme: pristine.readme.clone(),
        };
        break_it(&mut broken);
        let Err(problem) = check(&broken) else {
            panic!("{check_name} passed manifests broken to provoke {expected:?}");
        };
        for part in *expected {
            assert!(
                problem.contains(part),
                "{check_name}: the problem report should mention {part:?}: {problem}"
            );
        }
    }
}

/// Sets the value at a JSON pointer (`/spec/replicas`).
fn set(value: &mut Value, pointer: &str, new: impl Into<Value>) {
    *value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} to set")) = new.into();
}

/// Removes the value at a JSON pointer.
fn remove(value: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    value
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|parent| parent.remove(key))
        .unwrap_or_else(|| panic!("no {pointer} to remove"));
}

fn doc_mut<'a>(m: &'a mut Manifests, kind: &str, name: &str) -> &'a mut Value {
    &mut m
        .docs
        .iter_mut()
        .find(|doc| doc.kind() == kind && doc.name() == name)
        .unwrap_or_else(|| panic!("no {kind} `{name}`"))
        .value
}

fn app_mut(m: &mut Manifests) -> &mut Value {
    let name = m.app().unwrap().name().to_string();
    doc_mut(m, "Deployment", &name)
}

fn container_mut(m: &mut Manifests) -> &mut Value {
    app_mut(m)["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|container| container["name"] == APP_CONTAINER)
        .unwrap()
}

fn env_mut<'a>(m: &'a mut Manifests, name: &str) -> &'a mut Value {
    &mut container_mut(m)["env"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|var| var["name"] == name)
        .unwrap_or_else(|| panic!("no env {name}"))["value"]
}
