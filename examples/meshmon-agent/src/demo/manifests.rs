//! The demo's Kubernetes objects: one Pod per simulated pod, annotated for Datadog
//! Autodiscovery exactly as seed 000 annotates Istio's services — `check_names`
//! `["istio"]`, `init_configs` `[{}]`, and an `instances` template whose endpoint uses
//! `%%host%%` — on the pod's `istio-proxy` container, plus each container's
//! `ad.datadoghq.com/<container>.logs` (source and service, as Datadog's unified service
//! tagging sets them). The agent's manifest file provider reads them; `%%host%%` becomes
//! the pod's IP.

use std::fmt::Write as _;

use super::mesh::{Pod, Topology};

/// The Pod objects of `topo`, as one multi-document YAML file.
pub fn pods_yaml(topo: &Topology) -> String {
    let mut out = String::from(
        "# meshmon-agent demo: the simulated Bookinfo pods, annotated for Datadog Autodiscovery\n# as seed 000 annotates Istio (check_names / init_configs / instances with %%host%%).\n",
    );
    for p in &topo.pods {
        out.push_str(&pod_yaml(p, topo.metrics_port));
    }
    out
}

fn pod_yaml(p: &Pod, port: u16) -> String {
    let mut ann = String::new();
    if p.sidecar {
        let _ = write!(
            ann,
            r#"    ad.datadoghq.com/istio-proxy.check_names: '["istio"]'
    ad.datadoghq.com/istio-proxy.init_configs: '[{{}}]'
    ad.datadoghq.com/istio-proxy.instances: |
        [
          {{
            "istio_mesh_endpoint": "http://%%host%%:{port}/stats/prometheus",
            "send_histograms_buckets": true
          }}
        ]
    ad.datadoghq.com/istio-proxy.logs: '[{{"source": "envoy", "service": "{svc}"}}]'
"#,
            svc = p.service()
        );
    }
    let mut containers = String::new();
    if let Some(c) = p.app_container {
        let svc = if p.sidecar {
            p.service()
        } else {
            p.app.clone()
        };
        let _ = writeln!(
            ann,
            "    ad.datadoghq.com/{c}.logs: '[{{\"source\": \"{}\", \"service\": \"{svc}\"}}]'",
            p.app_source
        );
        let _ = write!(
            containers,
            "  - name: {c}\n    image: docker.io/istio/examples-bookinfo-{}-{}:1.20.2\n    ports:\n    - containerPort: 9080\n",
            p.app,
            if p.version.is_empty() {
                "v1"
            } else {
                &p.version
            }
        );
    }
    if p.sidecar {
        containers.push_str("  - name: istio-proxy\n    image: docker.io/istio/proxyv2:1.24.0\n");
    }
    let version = if p.version.is_empty() {
        String::new()
    } else {
        format!("    version: {}\n", p.version)
    };
    format!(
        r#"---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  uid: {uid}
  labels:
    app: {app}
{version}  annotations:
{ann}spec:
  nodeName: demo-node
  containers:
{containers}status:
  phase: Running
  podIP: {ip}
  conditions:
  - type: Ready
    status: "True"
"#,
        name = p.name,
        ns = p.namespace,
        uid = p.uid,
        app = p.app,
        ip = p.ip,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::mesh::Role;
    use crate::demo::rng::Rng;
    use meshmon_core::autodiscovery::{ExpandOptions, expand, parse_objects};

    #[test]
    fn autodiscovery_expands_one_istio_check_per_sidecar() {
        let topo = Topology::bookinfo(&mut Rng::new(1), [127, 0, 10], 11, 15090);
        let text = pods_yaml(&topo);
        let objs = parse_objects(text.as_bytes()).unwrap();
        assert_eq!(objs.len(), 8);
        let exp = expand(&objs, &ExpandOptions::default());
        assert!(exp.errors.is_empty(), "{:?}", exp.errors);
        let checks: Vec<_> = exp
            .configs
            .iter()
            .filter(|c| !c.instance.is_null())
            .collect();
        assert_eq!(checks.len(), 7, "{:#?}", exp.configs);
        let r3 = topo.pod(Role::ReviewsV3);
        let c = checks
            .iter()
            .find(|c| c.tags.iter().any(|t| t == &format!("pod_name:{}", r3.name)))
            .unwrap();
        assert_eq!(c.check, "istio");
        assert_eq!(
            c.instance["istio_mesh_endpoint"],
            format!("http://{}:15090/stats/prometheus", r3.ip)
        );
        // The logs annotations name the APM service.
        let logs: Vec<_> = exp.configs.iter().filter(|c| c.logs.is_some()).collect();
        assert!(
            logs.iter().any(|c| c
                .logs
                .as_ref()
                .unwrap()
                .to_string()
                .contains("reviews.default")),
            "{logs:#?}"
        );
    }
}
