#![no_main]
use libfuzzer_sys::fuzz_target;
use meshmon_core::autodiscovery::{AdService, EnvPolicy, Port, Resolver, parse_template_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let svc = AdService {
        id: "svc".into(),
        hosts: [("pod".to_string(), "fd00::1".to_string()), ("bridge".to_string(), "10.0.0.1".to_string())].into(),
        ports: vec![Port { name: "http".into(), port: 80 }, Port { name: "m".into(), port: 9090 }],
        pid: Some(7),
        hostname: Some("h".into()),
        extra: [("namespace".to_string(), "ns".to_string())].into(),
        tags: vec!["a:1".into()],
        ready: true,
    };
    let r = Resolver::new(EnvPolicy::new([("A", "x")]));
    // raw string resolution
    if let Ok(Some(v)) = r.resolve_str(text, Some(&svc)) {
        if let serde_json::Value::String(s) = v {
            assert!(!s.contains("%%host%%") && !s.contains("%%port%%"), "{text:?} -> {s:?}");
        }
    }
    // template text
    if let Ok(v) = parse_template_text(text) {
        let _ = r.resolve_value(&v, Some(&svc));
    }
});
