//! Check instances → scrape jobs. The instances are the shapes Datadog documents
//! (the Istio README's v2 example, the legacy 1.4 example, OpenMetrics and
//! Prometheus check examples) and what autodiscovery produces.

use std::time::Duration;

use meshmon_prom::check::{
    CheckClass, CheckError, CheckKind, DEFAULT_INTERVAL, DEFAULT_TIMEOUT, ISTIO_LEGACY_SCRAPERS,
    jobs_from_instance,
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
        "use_openmetrics": true,
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
fn istio_legacy_1_4_check_one_v1_scraper_per_endpoint_key() {
    // Datadog's Istio 1.4 example (README, "v1.4 or earlier"): neither use_openmetrics
    // nor istiod_endpoint selects LegacyIstioCheck_1_4 (an OpenMetrics V1 check).
    let inst = json!({
        "use_openmetrics": false,
        "citadel_endpoint": "http://istio-citadel.istio-system:15014/metrics",
        "galley_endpoint": "http://istio-galley.istio-system:15014/metrics",
        "pilot_endpoint": "http://istio-pilot.istio-system:15014/metrics",
        "mixer_endpoint": "http://istio-telemetry.istio-system:15014/metrics",
        "istio_mesh_endpoint": "http://istio-telemetry.istio-system:42422/metrics",
        "send_histograms_buckets": true,
        "namespace": "ignored",
        "exclude_labels": ["source_principal"],
    });
    let out = jobs_from_instance("istio", &inst).unwrap();
    assert_eq!(out.class, CheckClass::LegacyIstio14);
    assert_eq!(out.class.datadog_name(), "LegacyIstioCheck_1_4");
    assert!(out.legacy_keys.is_empty());
    assert!(out.unknown_keys.is_empty(), "{:?}", out.unknown_keys);
    // Upstream's check order, whatever the instance's key order.
    let got: Vec<_> = out
        .jobs
        .iter()
        .map(|j| (j.source_key, j.mapping.namespace.as_str()))
        .collect();
    assert_eq!(got, ISTIO_LEGACY_SCRAPERS);
    for j in &out.jobs {
        let v1 = j.v1.as_ref().expect("V1 options on every legacy scraper");
        let mesh_or_mixer = matches!(j.source_key, "istio_mesh_endpoint" | "mixer_endpoint");
        // "Defaults that were set when istio was based on PrometheusCheck".
        assert_eq!(
            v1.send_monotonic_counter, !mesh_or_mixer,
            "{}",
            j.source_key
        );
        assert_eq!(v1.health_service_check, !mesh_or_mixer, "{}", j.source_key);
        assert_eq!(
            v1.send_monotonic_with_gauge,
            j.source_key == "istio_mesh_endpoint",
            "{}",
            j.source_key
        );
        assert_eq!(
            v1.label_to_hostname.as_deref(),
            (j.source_key == "istio_mesh_endpoint").then_some(j.endpoint.as_str())
        );
        // BLACKLIST_LABELS joins the instance's exclusions.
        assert_eq!(
            j.mapping.exclude_labels,
            ["source_principal", "connectionID"]
        );
        assert_eq!(
            j.mapping.metrics,
            MappingConfig::istio_legacy(j.source_key).unwrap().metrics
        );
        assert!(j.mapping.collect_histogram_buckets);
    }
    // Galley's ignore list.
    let galley = &out.jobs[3];
    assert_eq!(galley.mapping.exclude_metrics.len(), 2);
    let mut mapper = Mapper::new(galley.mapping.clone()).unwrap();
    let body = b"# TYPE galley_mcp_source_message_size_bytes histogram\n\
galley_mcp_source_message_size_bytes_bucket{le=\"+Inf\"} 1\n\
galley_mcp_source_message_size_bytes_sum 1\n\
galley_mcp_source_message_size_bytes_count 1\n";
    let stats = mapper
        .map(
            body,
            Format::PrometheusText,
            meshmon_core::Timestamp::EPOCH,
            &mut |m| panic!("ignored metric submitted: {}", m.name),
        )
        .unwrap();
    assert_eq!(stats.skipped_families, 1);
}

#[test]
fn istio_legacy_metric_maps_add_the_generic_go_and_process_metrics_to_the_control_plane() {
    let has = |key: &str, raw: &str| {
        MappingConfig::istio_legacy(key)
            .unwrap()
            .metrics
            .iter()
            .any(|m| m.raw == raw)
    };
    for key in [
        "mixer_endpoint",
        "pilot_endpoint",
        "galley_endpoint",
        "citadel_endpoint",
    ] {
        assert!(has(key, "go_goroutines"), "{key}");
        assert!(has(key, "process_open_fds"), "{key}");
    }
    assert!(!has("istio_mesh_endpoint", "go_goroutines"));
    assert!(MappingConfig::istio_legacy("istiod_endpoint").is_none());
}

#[test]
fn istio_legacy_endpoints_sharing_a_url_reuse_the_first_scraper() {
    // Datadog's config_map is keyed by URL: the first configuration created (check
    // order) is kept, and processed once per key.
    let inst = json!({
        "istio_mesh_endpoint": "http://istio-telemetry:42422/metrics",
        "mixer_endpoint": "http://istio-telemetry:15014/metrics",
        "pilot_endpoint": "http://istio-telemetry:15014/metrics",
    });
    let out = jobs_from_instance("istio", &inst).unwrap();
    let got: Vec<_> = out
        .jobs
        .iter()
        .map(|j| (j.source_key, j.mapping.namespace.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("istio_mesh_endpoint", "istio.mesh"),
            ("mixer_endpoint", "istio.mixer"),
            ("pilot_endpoint", "istio.mixer"),
        ]
    );
    assert_eq!(out.jobs[1].mapping, out.jobs[2].mapping);
    assert_eq!(out.jobs[1].v1, out.jobs[2].v1);
}

#[test]
fn istio_class_selection_follows_istio_new() {
    let class = |v: serde_json::Value| jobs_from_instance("istio", &v).map(|o| o.class);
    assert_eq!(
        class(json!({"use_openmetrics": true, "istiod_endpoint": "http://a/m"})),
        Ok(CheckClass::IstioCheckV2)
    );
    assert_eq!(
        class(json!({"istiod_endpoint": "http://a/m"})),
        Ok(CheckClass::IstioV1)
    );
    assert_eq!(
        class(json!({"use_openmetrics": false, "istio_mesh_endpoint": "http://a/m"})),
        Ok(CheckClass::LegacyIstio14)
    );
    // The V1 istiod check refuses the mesh endpoint in the same instance.
    let err = class(json!({"istiod_endpoint": "http://a/m", "istio_mesh_endpoint": "http://b/m"}))
        .unwrap_err();
    assert!(
        matches!(&err, CheckError::Option { key, .. } if key == "istio_mesh_endpoint"),
        "{err}"
    );
    // Neither: the legacy check needs one of its endpoints.
    assert!(matches!(
        class(json!({"tags": ["a:b"]})),
        Err(CheckError::NoEndpoint { .. })
    ));
    assert!(!CheckClass::IstioCheckV2.is_v1());
    assert!(CheckClass::IstioV1.is_v1() && CheckClass::LegacyIstio14.is_v1());
}

#[test]
fn istio_v1_istiod_check_keeps_the_instance_metrics_and_excludes_connection_id() {
    let inst = json!({
        "istiod_endpoint": "http://istiod:15014/metrics",
        "metrics": [{"my_metric": "mine"}],
        "namespace": "ignored",
        "send_monotonic_counter": false,
    });
    let out = jobs_from_instance("istio", &inst).unwrap();
    assert!(out.unknown_keys.is_empty(), "{:?}", out.unknown_keys);
    let job = &out.jobs[0];
    assert_eq!(job.mapping.namespace, "istio");
    let preset = MappingConfig::istio_istiod().metrics;
    assert_eq!(job.mapping.metrics.len(), preset.len() + 1);
    assert_eq!(job.mapping.metrics[0].raw, "my_metric");
    assert_eq!(job.mapping.exclude_labels, ["connectionID"]);
    let v1 = job.v1.as_ref().unwrap();
    assert!(!v1.send_monotonic_counter && v1.health_service_check);
    // V1-only keys are unknown to the V2 class.
    let out = jobs_from_instance(
        "istio",
        &json!({"use_openmetrics": true, "istiod_endpoint": "http://a/m", "send_monotonic_counter": true}),
    )
    .unwrap();
    assert_eq!(out.unknown_keys, ["send_monotonic_counter"]);
    assert!(out.jobs[0].v1.is_none());
}

#[test]
fn unknown_and_unimplemented_keys_are_reported_not_dropped() {
    let inst = json!({
        "use_openmetrics": true,
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
        "use_openmetrics": true,
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
        "use_openmetrics": true,
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
