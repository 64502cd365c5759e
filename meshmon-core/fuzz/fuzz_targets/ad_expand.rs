#![no_main]
use libfuzzer_sys::fuzz_target;
use meshmon_core::autodiscovery::{ExpandOptions, expand, parse_objects};

fuzz_target!(|data: &[u8]| {
    if let Ok(objects) = parse_objects(data) {
        let out = expand(&objects, &ExpandOptions::default());
        for c in &out.configs {
            // every config is serializable and carries sorted, unique tags
            let _ = serde_json::to_string(c).unwrap();
            assert!(c.tags.windows(2).all(|w| w[0] < w[1]));
        }
    }
});
