//! `deploy/kubernetes`, checked without a cluster: the gateway config it ships stays the root
//! one, and every overlay, rendered by kubectl's kustomize, keeps the deployment's invariants
//! (scripts/check-k8s.sh validates the same output against the Kubernetes schemas).

use std::path::Path;
use std::process::Command;

use serde::Deserialize as _;
use serde_yaml::Value;

use crate::docker::repo_root;

fn yaml_file(path: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every object `kubectl kustomize` renders for the overlay `name`.
fn render(name: &str) -> Vec<Value> {
    let dir = repo_root().join("deploy/kubernetes/overlays").join(name);
    let text = crate::run_ok(
        Command::new("kubectl").arg("kustomize").arg(&dir),
        &format!("kubectl kustomize {}", dir.display()),
    );
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("not an integer: {v:?}"))
}

#[test]
fn the_kubernetes_gateway_config_is_the_root_one_but_for_its_listeners() {
    let mut root = yaml_file(&repo_root().join("gateway.yaml"));
    let mut k8s = yaml_file(&repo_root().join("deploy/kubernetes/base/gateway.yaml"));

    let listeners = k8s["listeners"].clone();
    for doc in [&mut root, &mut k8s] {
        doc.as_mapping_mut().unwrap().remove("listeners");
    }

    assert_eq!(
        root, k8s,
        "deploy/kubernetes/base/gateway.yaml drifted from gateway.yaml"
    );
    assert_eq!(listeners["http"], "0.0.0.0:8080");
    assert_eq!(listeners["https"], "0.0.0.0:8443");
    assert_eq!(listeners["admin"], "0.0.0.0:9091");
}

/// The pod template of a Deployment or StatefulSet.
fn pod(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

fn assert_hardened(workload: &Value) {
    let name = workload["metadata"]["name"].as_str().unwrap();
    let spec = pod(workload);
    let security = &spec["securityContext"];
    assert_eq!(security["runAsNonRoot"], true, "{name}: runAsNonRoot");
    assert!(int(&security["runAsUser"]) > 0, "{name}: a non-root uid");
    assert_eq!(
        spec["automountServiceAccountToken"], false,
        "{name}: no API token"
    );
    for c in spec["containers"].as_sequence().unwrap() {
        let container = c["name"].as_str().unwrap();
        assert!(
            c["readinessProbe"].is_mapping(),
            "{name}/{container}: readiness probe"
        );
        assert!(
            c["livenessProbe"].is_mapping(),
            "{name}/{container}: liveness probe"
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}/{container}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}/{container}");
        assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{name}/{container}");
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !c["resources"][kind][resource].is_null(),
                    "{name}/{container}: resources.{kind}.{resource}"
                );
            }
        }
    }
}

fn assert_drains(workload: &Value, drain_seconds: i64) {
    let name = workload["metadata"]["name"].as_str().unwrap();
    let spec = pod(workload);
    let container = &spec["containers"][0];
    let pre_stop = &container["lifecycle"]["preStop"]["exec"]["command"];
    assert_eq!(pre_stop[0], "sleep", "{name}: a preStop delay");
    let delay: i64 = pre_stop[1].as_str().unwrap().parse().unwrap();
    assert!(
        int(&spec["terminationGracePeriodSeconds"]) > delay + drain_seconds,
        "{name}: the grace period covers the preStop delay and the drain"
    );
    let strategy = &workload["spec"]["strategy"]["rollingUpdate"];
    assert_eq!(
        strategy["maxUnavailable"], 0,
        "{name}: rolls out start-first"
    );
}

/// The `from` entries of a NetworkPolicy's ingress rules, as the app names they allow.
fn allowed_sources(policy: &Value) -> Vec<String> {
    policy["spec"]["ingress"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["from"].as_sequence().cloned().unwrap_or_default())
        .map(|from| {
            from["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                .as_str()
                .unwrap_or("<any>")
                .to_owned()
        })
        .collect()
}

fn assert_invariants(objects: &[Value]) {
    // No secret is rendered from the repository: they are created in the cluster.
    assert!(
        objects.iter().all(|o| o["kind"] != "Secret"),
        "a Secret in the manifests"
    );

    let gateway = find(objects, "Deployment", "gateway");
    let backend = find(objects, "Deployment", "backend");
    for workload in objects
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
    {
        assert_hardened(workload);
    }
    let shutdown_grace = 8; // gateway.yaml's server.shutdown_grace
    assert_drains(gateway, shutdown_grace);
    assert_drains(backend, shutdown_grace);
    for workload in [gateway, backend] {
        let annotations = &workload["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true");
    }
    let gw = &pod(gateway)["containers"][0];
    assert_eq!(gw["readinessProbe"]["httpGet"]["path"], "/readyz");

    // The config: the ConfigMap, mounted as a directory so the kubelet's updates reach it.
    let config = find(objects, "ConfigMap", "gateway-config");
    let shipped =
        std::fs::read_to_string(repo_root().join("deploy/kubernetes/base/gateway.yaml")).unwrap();
    assert_eq!(config["data"]["gateway.yaml"], shipped.as_str());
    let mount = gw["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/etc/gateway")
        .expect("the config is mounted at /etc/gateway");
    assert!(
        mount["subPath"].is_null(),
        "a subPath mount never sees updates"
    );

    // Services: the backend headless (every pod resolves), the gateway a load balancer.
    let backend_service = find(objects, "Service", "backend");
    assert_eq!(backend_service["spec"]["clusterIP"], "None");
    let gateway_service = find(objects, "Service", "gateway");
    assert_eq!(gateway_service["spec"]["type"], "LoadBalancer");
    let ports: Vec<i64> = gateway_service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| int(&p["port"]))
        .collect();
    assert_eq!(ports, vec![80, 443]);

    // Scaling and disruption.
    for name in ["gateway", "backend"] {
        find(objects, "HorizontalPodAutoscaler", name);
        find(objects, "PodDisruptionBudget", name);
    }

    // Network policies: deny by default; only the gateway (and Prometheus) reaches the
    // backend.
    let deny = find(objects, "NetworkPolicy", "default-deny-ingress");
    assert_eq!(
        deny["spec"]["podSelector"],
        Value::Mapping(Default::default())
    );
    assert!(
        deny["spec"]["ingress"].is_null(),
        "no rule: nothing allowed"
    );
    assert_eq!(
        allowed_sources(find(objects, "NetworkPolicy", "backend")),
        vec!["gateway", "prometheus"]
    );
}

#[test]
fn the_dev_overlay_keeps_the_invariants_and_only_the_backend_reaches_postgres() {
    let objects = render("dev");

    assert_invariants(&objects);
    for name in ["postgres", "redis"] {
        let set = find(&objects, "StatefulSet", name);
        assert!(
            set["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
                .is_string(),
            "{name} keeps its data on a persistent volume"
        );
    }
    assert_eq!(
        allowed_sources(find(&objects, "NetworkPolicy", "postgres")),
        vec!["backend"]
    );
    assert_eq!(
        allowed_sources(find(&objects, "NetworkPolicy", "redis")),
        vec!["backend", "gateway"],
        "the gateway's cluster-wide rate limits live in Redis"
    );
    assert!(objects
        .iter()
        .all(|o| o["metadata"]["namespace"].is_null() || o["metadata"]["namespace"] == "todo-dev"));
}

#[test]
fn the_production_overlay_keeps_the_invariants_and_runs_no_datastore() {
    let objects = render("production");

    assert_invariants(&objects);
    assert!(
        objects.iter().all(|o| o["kind"] != "StatefulSet"),
        "production uses managed PostgreSQL and Redis"
    );
    let env = pod(find(&objects, "Deployment", "backend"))["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .clone();
    for (name, key) in [("DATABASE_URL", "database-url"), ("REDIS_URL", "redis-url")] {
        let var = env.iter().find(|e| e["name"] == name).expect(name);
        assert_eq!(
            var["valueFrom"]["secretKeyRef"]["key"], key,
            "{name} from a Secret"
        );
    }
    assert_eq!(
        find(&objects, "Service", "redis")["spec"]["type"],
        "ExternalName"
    );
}
