//! What an operator applies matches the code: every YAML and JSON file under
//! `manifests/` parses; the Kubernetes ConfigMap's TOML loads with
//! portcall's own loader and its `server.listen` port is the containers'
//! port, the Service's target and the Dockerfile's `EXPOSE`; probes use
//! `/healthz` and `/readyz`; every secret reference is provided by the
//! Deployments; the dashboard and the alerts chart only exported metrics.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use portcall::config::{SecretEnv, Settings};
use portcall::ingest::SourceKind;
use portcall::telemetry::Metrics;
use serde_json::Value;

use crate::providers::test_key_path;

fn manifests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

/// Every file under `dir` whose name ends with one of `extensions`.
fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path, extensions));
        } else if extensions
            .iter()
            .any(|ext| path.extension().is_some_and(|e| e == *ext))
        {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Every document of a YAML file, as JSON values.
fn yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
            serde_json::to_value(value).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn one(path: &str) -> Value {
    let mut docs = yaml(&manifests().join(path));
    assert_eq!(docs.len(), 1, "{path}: one document");
    docs.remove(0)
}

/// Environment variables and files as a pod would see them: any variable
/// is set, and any file is the test App key (a valid PEM).
struct PodEnv;

impl SecretEnv for PodEnv {
    fn var(&self, _name: &str) -> Option<String> {
        Some("a-value-from-the-secret".into())
    }
    fn read_file(&self, _path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(test_key_path())
    }
}

/// The ConfigMap's `portcall.toml`, as text and loaded by portcall.
fn configmap_settings() -> (String, Settings) {
    let configmap = one("kubernetes/configmap.yaml");
    assert_eq!(configmap["kind"], "ConfigMap");
    let toml = configmap["data"]["portcall.toml"]
        .as_str()
        .expect("the ConfigMap holds portcall.toml")
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcall.toml");
    std::fs::write(&path, &toml).unwrap();
    let overrides = figment::providers::Env::prefixed("PORTCALL_MANIFEST_TEST_UNSET__").split("__");
    let settings = Settings::load_with(Some(&path), overrides, &PodEnv)
        .unwrap_or_else(|e| panic!("the ConfigMap's configuration does not load:\n{e}"));
    (toml, settings)
}

/// The `env:NAME` and `file:/path` references in a TOML text.
fn references(toml: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut vars, mut paths) = (BTreeSet::new(), BTreeSet::new());
    for piece in toml.split('"') {
        if let Some(name) = piece.strip_prefix("env:") {
            vars.insert(name.to_owned());
        } else if let Some(path) = piece.strip_prefix("file:") {
            paths.insert(path.to_owned());
        }
    }
    (vars, paths)
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

/// A container port given by number or by name.
fn port_number(container: &Value, port: &Value) -> u64 {
    match port {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(name) => container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == *name)
            .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
            .as_u64()
            .unwrap(),
        other => panic!("not a port: {other}"),
    }
}

#[test]
fn every_yaml_and_json_manifest_parses() {
    let all = files(&manifests(), &["yaml", "yml", "json"]);
    assert!(all.len() >= 10, "{all:?}");
    for path in all {
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        } else {
            assert!(!yaml(&path).is_empty(), "{}: empty", path.display());
        }
    }
}

#[test]
fn the_deployments_match_the_configmap_and_the_code() {
    let (toml, settings) = configmap_settings();
    let port = u64::from(settings.server.listen.port());
    assert!(
        settings.server.listen.ip().is_unspecified(),
        "probes reach the pod IP"
    );
    let secret = one("kubernetes/secret.yaml");
    assert_eq!(secret["kind"], "Secret");
    let secret_keys: BTreeSet<String> = secret["stringData"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, value)| {
            assert_eq!(value, "", "the Secret template holds no value ({key})");
            key.clone()
        })
        .collect();
    let (vars, paths) = references(&toml);
    let service = one("kubernetes/service.yaml");

    for (file, min_replicas, max_replicas) in [
        ("kubernetes/deployment.yaml", 1, 1),
        ("kubernetes/postgres/deployment.yaml", 2, u64::MAX),
    ] {
        let deployment = one(file);
        assert_eq!(deployment["kind"], "Deployment", "{file}");
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
        assert!(
            (min_replicas..=max_replicas).contains(&replicas),
            "{file}: {replicas} replicas"
        );
        let pod = &deployment["spec"]["template"]["spec"];
        let c = container(&deployment);

        // Port, probes, graceful termination.
        let ports: Vec<u64> = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["containerPort"].as_u64().unwrap())
            .collect();
        assert_eq!(
            ports,
            [port],
            "{file}: containerPort is server.listen's port"
        );
        for (probe, expected) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(c[probe]["httpGet"]["path"], expected, "{file}: {probe}");
            assert_eq!(
                port_number(c, &c[probe]["httpGet"]["port"]),
                port,
                "{file}: {probe} port"
            );
        }
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            grace > settings.server.shutdown_timeout.as_secs(),
            "{file}: grace {grace}s is not longer than the shutdown drain"
        );
        let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for (key, value) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(
                &pod_labels[key], value,
                "{file}: the Service selects the pods"
            );
        }
        assert_eq!(
            port_number(c, &service["spec"]["ports"][0]["targetPort"]),
            port,
            "{file}: the Service's targetPort"
        );

        // Non-root, read-only root filesystem, requests and limits.
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{file}");
        assert!(
            pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0,
            "{file}"
        );
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{file}"
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"], false,
            "{file}"
        );
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    c["resources"][kind][resource].is_string(),
                    "{file}: resources.{kind}.{resource}"
                );
            }
        }

        // The config file is where --config reads it.
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let config_path = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
        let mounts = c["volumeMounts"].as_array().unwrap();
        let config_mount = mounts
            .iter()
            .find(|m| m["mountPath"] == config_path)
            .unwrap_or_else(|| panic!("{file}: nothing mounted at {config_path}"));
        assert_eq!(config_mount["subPath"], "portcall.toml", "{file}");
        assert_eq!(args.last(), Some(&"serve"), "{file}");

        // Every env: reference is set from the Secret; every file: one is mounted.
        let env = c["env"].as_array().unwrap();
        let from_secret = |name: &str| {
            env.iter().find(|e| e["name"] == name).map(|e| {
                let key = e["valueFrom"]["secretKeyRef"]["key"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: {name} is not from the Secret"));
                assert!(
                    secret_keys.contains(key),
                    "{file}: {name} names Secret key {key}, not in the template"
                );
                assert_eq!(
                    e["valueFrom"]["secretKeyRef"]["name"], secret["metadata"]["name"],
                    "{file}"
                );
            })
        };
        for var in &vars {
            assert!(from_secret(var).is_some(), "{file}: env:{var} is not set");
        }
        for path in &paths {
            let dir = Path::new(path).parent().unwrap().to_str().unwrap();
            let mount = mounts
                .iter()
                .find(|m| m["mountPath"] == dir)
                .unwrap_or_else(|| panic!("{file}: nothing mounted at {dir} for file:{path}"));
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"])
                .unwrap();
            let name = Path::new(path).file_name().unwrap().to_str().unwrap();
            assert!(
                secret_keys.contains(name),
                "{file}: {name} is not a Secret key"
            );
            assert!(
                volume["secret"]["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["key"] == name && i["path"] == name),
                "{file}: the Secret volume does not project {name}"
            );
        }
        let log_format = env
            .iter()
            .find(|e| e["name"] == "PORTCALL_LOG_FORMAT")
            .expect("JSON logs");
        assert_eq!(log_format["value"], "json");

        if replicas > 1 {
            // Several replicas need PostgreSQL: database.url from the Secret.
            assert!(
                from_secret("PORTCALL__DATABASE__URL").is_some(),
                "{file}: database.url is not from the Secret"
            );
        } else {
            // SQLite: the database file lives on the claimed volume.
            let db_dir = settings.database.url.trim_start_matches("sqlite://");
            let db_dir = Path::new(db_dir).parent().unwrap().to_str().unwrap();
            let data = mounts
                .iter()
                .find(|m| m["mountPath"] == db_dir)
                .unwrap_or_else(|| panic!("{file}: the SQLite directory {db_dir} is not a volume"));
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == data["name"])
                .unwrap();
            let claim = volume["persistentVolumeClaim"]["claimName"]
                .as_str()
                .unwrap();
            assert_eq!(one("kubernetes/pvc.yaml")["metadata"]["name"], claim);
            assert_eq!(
                deployment["spec"]["strategy"]["type"], "Recreate",
                "one SQLite writer at a time"
            );
        }
    }
    for pdb in ["kubernetes/pdb.yaml", "kubernetes/postgres/pdb.yaml"] {
        let pdb = one(pdb);
        assert_eq!(pdb["kind"], "PodDisruptionBudget");
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"],
            service["spec"]["selector"]
        );
    }
}

#[test]
fn the_dockerfile_builds_the_release_binary_and_runs_it_as_non_root() {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
            .unwrap();
    let (_, settings) = configmap_settings();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let stages: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "multi-stage: {stages:?}");
    assert!(
        stages[0].starts_with("FROM rust:") && stages[0].ends_with(" AS builder"),
        "{}",
        stages[0]
    );
    assert!(text.contains("cargo build --release --locked"));
    let runtime_at = lines.iter().position(|l| l == stages[1]).unwrap();
    let runtime = &lines[runtime_at..];
    assert!(runtime
        .iter()
        .any(|l| l.starts_with("COPY --from=builder ")));
    let user = runtime
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "USER {user}");
    let deployment = one("kubernetes/deployment.yaml");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
            .as_u64()
            .unwrap()
            .to_string(),
        uid,
        "the Deployment runs as the image's user"
    );
    let expose = runtime
        .iter()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .expect("EXPOSE");
    assert_eq!(expose, settings.server.listen.port().to_string());
    assert!(runtime.contains(&r#"ENTRYPOINT ["portcall"]"#));
    assert!(runtime.contains(&r#"CMD ["serve"]"#));
}

/// The metric names (`portcall_…`, `scm_…`, `integrations_…`) a PromQL
/// expression uses.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|token| {
            ["portcall_", "scm_", "integrations_"]
                .iter()
                .any(|p| token.starts_with(p))
        })
        .map(str::to_owned)
        .collect()
}

/// The names a query may use: every exported family, and a histogram's
/// `_bucket`, `_sum` and `_count` series.
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for name in Metrics::new().names() {
        names.insert(name.clone());
        for suffix in ["_bucket", "_sum", "_count"] {
            names.insert(format!("{name}{suffix}"));
        }
    }
    names
}

#[test]
fn the_dashboard_charts_only_exported_metrics_and_every_contract_metric() {
    let text = std::fs::read_to_string(manifests().join("grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let exported = exported();
    let mut charted = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}: no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}: no portcall metric");
            for name in names {
                assert!(
                    exported.contains(&name),
                    "{}: {name} is not exported",
                    panel["title"]
                );
                charted.insert(
                    name.trim_end_matches("_bucket")
                        .trim_end_matches("_sum")
                        .trim_end_matches("_count")
                        .to_owned(),
                );
            }
        }
    }
    for name in Metrics::new().names() {
        if name != "portcall_inbox_processed_total" {
            assert!(
                charted.contains(name),
                "the dashboard does not chart {name}"
            );
        }
    }
}

#[test]
fn the_alerts_use_only_exported_metrics_and_cover_the_contract() {
    let rules = one("prometheus-rules.yaml");
    let exported = exported();
    let mut alerts = BTreeSet::new();
    for group in rules["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}: no portcall metric");
            for name in names {
                assert!(
                    exported.contains(&name),
                    "{}: {name} is not exported",
                    rule["alert"]
                );
            }
            assert!(rule["annotations"]["summary"].is_string());
            alerts.insert(rule["alert"].as_str().unwrap().to_owned());
        }
    }
    for alert in [
        "PortcallDeadJobs",
        "PortcallInboxBacklog",
        "PortcallVerificationFailuresSpike",
        "PortcallIntegrationUnhealthy",
    ] {
        assert!(alerts.contains(alert), "no {alert} in {alerts:?}");
    }
}

#[test]
fn the_registry_notifications_reach_a_distribution_source_with_a_bearer_token() {
    let (_, settings) = configmap_settings();
    let config = one("registry/config.yml");
    let endpoints = config["notifications"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    let url = endpoint["url"].as_str().unwrap();
    let source = url
        .rsplit_once("/webhooks/")
        .expect("a /webhooks/{source} URL")
        .1;
    let configured = settings
        .sources
        .iter()
        .find(|s| s.name == source)
        .unwrap_or_else(|| panic!("no source {source} in the ConfigMap"));
    assert_eq!(configured.kind, SourceKind::Distribution);
    let service = one("kubernetes/service.yaml");
    let host = format!("http://{}.", service["metadata"]["name"].as_str().unwrap());
    assert!(url.starts_with(&host), "{url} is not the Service {host}");
    let authorization = endpoint["headers"]["Authorization"][0].as_str().unwrap();
    assert!(authorization.starts_with("Bearer "), "{authorization}");
}
