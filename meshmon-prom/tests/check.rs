//! Check instances → scrape jobs. The instances are the shapes Datadog documents
//! (the Istio README's v2 example, the legacy 1.4 example, OpenMetrics and
//! Prometheus check examples) and what autodiscovery produces.

use std::time::Duration;

use meshmon_prom::check::{
    CheckError, CheckKind, DEFAULT_INTERVAL, DEFAULT_TIMEOUT, jobs_from_instance,
};
use meshmon_prom::mapping::ConfigError;
use meshmon_prom::{Format, Mapper, MappingConfig};
use serde_json::json;

#[test]
fn istio_v2_instance_from_the_datadog_readme() {
    let inst = json!({
        "use_openmetrics": true,
        "istio_mesh_endpoint": "http://istio-proxy.istio-system:15090/stats/prometheus",
        "exclude_labels": ["source_version", "destination_version", "source_principal"],
        "send_histograms_buckets": false,
        "tags": ["kube_namespace:istio-system", "kube_service:istio-proxy"],
    });
    let out = jobs_from_instance("istio", &inst).unwrap();
    assert_eq!(out.check, CheckKind::Istio);
    assert!(out.unknown_keys.is_empty(), "{:?}", out.unknown_keys);
    assert!(out.legacy_keys.is_empty());
    assert_eq!(out.jobs.len(), 1);
    let job = &out.jobs[0];
    assert_eq!(job.source_key, "istio_mesh_endpoint");
    assert_eq!(job.interval, DEFAULT_INTERVAL);
    assert_eq!(job.timeout, DEFAULT_TIMEOUT);
    let mut want = MappingConfig::istio_mesh()
        .with_endpoint("http://istio-proxy.istio-system:15090/stats/prometheus");
    want.exclude_labels = vec![
        "source_version".into(),
        "destination_version".into(),
        "source_principal".into(),
    ];
    want.collect_histogram_buckets = false;
    want.tags = vec![
        "kube_namespace:istio-system".into(),
        "kube_service:istio-proxy".into(),
    ];
    assert_eq!(job.mapping, want);

    // And the job maps a scrape the way the preset does, with the instance's options.
    let body = b"# TYPE istio_requests_total counter\n\
istio_requests_total{source_principal=\"spiffe://x\",response_code=\"200\"} 3\n";
    let mut mapper = Mapper::new(job.mapping.clone()).unwrap();
    let mut got = Vec::new();
    mapper
        .map(
            body,
            Format::PrometheusText,
            meshmon_core::Timestamp::EPOCH,
            &mut |m| got.push(format!("{} [{}]", m.name, m.tags)),
        )
        .unwrap();
    assert_eq!(
        got,
        [
            "istio.mesh.request.count [endpoint:http://istio-proxy.istio-system:15090/stats/prometheus,kube_namespace:istio-system,kube_service:istio-proxy,response_code:200]"
        ]
    );
}

#[test]
fn istio_mesh_and_istiod_make_two_jobs_in_datadogs_order() {
    let inst = json!({
        "istiod_endpoint": "http://istiod:15014/metrics",
        "istio_mesh_endpoint": "http://10.0.0.5:15090/stats/prometheus",
        "min_collection_interval": 30,
        "timeout": "2.5",
    });
    let out = jobs_from_instance("istio", &inst).unwrap();
    let keys: Vec<_> = out
        .jobs
        .iter()
        .map(|j| (j.source_key, j.mapping.namespace.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("istio_mesh_endpoint", "istio.mesh"),
            ("istiod_endpoint", "istio")
        ]
    );
    assert_eq!(
        out.jobs[1].mapping,
        MappingConfig::istio_istiod().with_endpoint("http://istiod:15014/metrics")
    );
    assert!(
        out.jobs
            .iter()
            .all(|j| j.interval == Duration::from_secs(30))
    );
    assert!(
        out.jobs
            .iter()
            .all(|j| j.timeout == Duration::from_millis(2500))
    );
}

#[test]
fn istio_legacy_components_are_scraped_under_istiod_and_reported() {
    // Datadog's Istio 1.4 example (README, "v1.4 or earlier"), with use_openmetrics off.
    let inst = json!({
        "use_openmetrics": false,
        "istio_mesh_endpoint": "http://istio-telemetry.istio-system:42422/metrics",
        "mixer_endpoint": "http://istio-telemetry.istio-system:15014/metrics",
        "galley_endpoint": "http://istio-galley.istio-system:15014/metrics",
        "pilot_endpoint": "http://istio-pilot.istio-system:15014/metrics",
        "citadel_endpoint": "http://istio-citadel.istio-system:15014/metrics",
        "send_histograms_buckets": true,
    });
    let out = jobs_from_instance("istio", &inst).unwrap();
    assert_eq!(
        out.legacy_keys,
        [
            "mixer_endpoint",
            "galley_endpoint",
            "pilot_endpoint",
            "citadel_endpoint",
            "use_openmetrics"
        ]
    );
    assert!(out.unknown_keys.is_empty());
    assert_eq!(out.jobs.len(), 5);
    for j in &out.jobs[1..] {
        assert_eq!(j.mapping.namespace, "istio", "{}", j.source_key);
        assert_eq!(j.mapping.metrics, MappingConfig::istio_istiod().metrics);
        assert_eq!(
            j.mapping.openmetrics_endpoint.as_deref(),
            Some(j.endpoint.as_str())
        );
    }
}

#[test]
fn unknown_and_unimplemented_keys_are_reported_not_dropped() {
    let inst = json!({
        "istiod_endpoint": "http://istiod:15014/metrics",
        "exclude_lables": ["typo"],
        "tls_verify": false,
        "openmetrics_endpoint": "http://elsewhere/metrics",
    });
    let out = jobs_from_instance("istio", &inst).unwrap();
    assert_eq!(
        out.unknown_keys,
        ["exclude_lables", "openmetrics_endpoint", "tls_verify"]
    );
    assert_eq!(out.jobs[0].endpoint, "http://istiod:15014/metrics");
    assert!(out.jobs[0].mapping.exclude_labels.is_empty());
}

#[test]
fn istio_instance_options_replace_or_extend_the_preset() {
    let inst = json!({
        "istiod_endpoint": "http://istiod:15014/metrics",
        "namespace": "mesh.cp",
        "extra_metrics": [{"my_custom_total": "custom"}],
    });
    let job = &jobs_from_instance("istio", &inst).unwrap().jobs[0];
    assert_eq!(job.mapping.namespace, "mesh.cp");
    let preset = MappingConfig::istio_istiod().metrics;
    assert_eq!(job.mapping.metrics.len(), preset.len() + 1);
    assert_eq!(job.mapping.metrics[..preset.len()], preset[..]);
    assert_eq!(job.mapping.metrics[preset.len()].raw, "my_custom_total");

    let inst = json!({
        "istiod_endpoint": "http://istiod:15014/metrics",
        "metrics": ["only_this"],
    });
    let job = &jobs_from_instance("istio", &inst).unwrap().jobs[0];
    assert_eq!(job.mapping.metrics.len(), 1);
    assert_eq!(job.mapping.metrics[0].raw, "only_this");
}

#[test]
fn openmetrics_and_prometheus_checks() {
    let inst = json!({
        "openmetrics_endpoint": "http://app:9090/metrics",
        "namespace": "app",
        "metrics": [{"http_requests": "requests"}, "up"],
        "rename_labels": {"pod": "kube_pod"},
    });
    let out = jobs_from_instance("openmetrics", &inst).unwrap();
    let job = &out.jobs[0];
    assert_eq!(
        (job.source_key, job.endpoint.as_str()),
        ("openmetrics_endpoint", "http://app:9090/metrics")
    );
    assert_eq!(job.mapping.namespace, "app");
    assert_eq!(job.mapping.metrics.len(), 2);
    assert_eq!(
        job.mapping.rename_labels,
        [("pod".to_string(), "kube_pod".to_string())]
    );

    // v1 spelling on the openmetrics check, and the legacy prometheus check.
    for check in ["openmetrics", "prometheus"] {
        let inst = json!({"prometheus_url": "http://app:9090/metrics", "namespace": "app", "metrics": ["up"]});
        let out = jobs_from_instance(check, &inst).unwrap();
        assert_eq!(out.jobs[0].source_key, "prometheus_url", "{check}");
        assert_eq!(
            out.jobs[0].mapping.openmetrics_endpoint.as_deref(),
            Some("http://app:9090/metrics")
        );
    }
    let both = json!({"prometheus_url": "http://a/", "openmetrics_endpoint": "http://b/"});
    assert!(matches!(
        jobs_from_instance("openmetrics", &both),
        Err(CheckError::Option { .. })
    ));
}

#[test]
fn errors_name_the_check_and_the_option() {
    assert_eq!(
        jobs_from_instance("redisdb", &json!({})),
        Err(CheckError::UnsupportedCheck("redisdb".into()))
    );
    assert!(matches!(
        jobs_from_instance("istio", &json!(["x"])),
        Err(CheckError::NotAnObject {
            check: "istio",
            found: "an array"
        })
    ));
    assert!(matches!(
        jobs_from_instance("istio", &json!({"send_histograms_buckets": true})),
        Err(CheckError::NoEndpoint { check: "istio", .. })
    ));
    assert!(matches!(
        jobs_from_instance("openmetrics", &json!({"namespace": "x"})),
        Err(CheckError::NoEndpoint {
            check: "openmetrics",
            ..
        })
    ));
    let ep = "http://istiod:15014/metrics";
    for (key, value) in [
        ("min_collection_interval", json!(0)),
        ("min_collection_interval", json!(-5)),
        ("min_collection_interval", json!("soon")),
        ("timeout", json!([1])),
        ("istiod_endpoint", json!(15014)),
        ("istiod_endpoint", json!("  ")),
        ("use_openmetrics", json!("yes")),
        ("exclude_labels", json!("source_principal")),
        ("tag_by_endpoint", json!("maybe")),
    ] {
        let mut inst = json!({"istiod_endpoint": ep});
        inst[key] = value.clone();
        match jobs_from_instance("istio", &inst) {
            Err(CheckError::Option {
                check: "istio",
                key: k,
                message,
            }) => {
                assert_eq!(k, key, "{value}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("{key}={value}: {other:?}"),
        }
    }
    // A mapping that cannot compile fails here, not at the first scrape.
    let bad = json!({"istiod_endpoint": ep, "exclude_metrics": ["istio_("]});
    assert!(matches!(
        jobs_from_instance("istio", &bad),
        Err(CheckError::Mapping {
            source: ConfigError::Regex {
                field: "exclude_metrics",
                ..
            },
            ..
        })
    ));
    let e = jobs_from_instance("istio", &json!({"istiod_endpoint": ep, "timeout": 0})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "istio: option \"timeout\": 0 is not a positive number of seconds"
    );
}
