//! Loghub-2k helpers shared by the corpus tests. The data is read from
//! `../shared/data/loghub-2k` (research licence: never copied into the repository).

#![allow(dead_code)]

use std::path::PathBuf;

/// Whether a missing corpus must fail the test (`MESHMON_REQUIRE_CORPUS=1`, set by CI).
pub fn corpus_required() -> bool {
    std::env::var_os("MESHMON_REQUIRE_CORPUS").is_some_and(|v| v == "1")
}

/// One Loghub-2k dataset: message part of each line and both ground truths.
pub struct Dataset {
    pub name: String,
    pub contents: Vec<String>,
    pub unmatched_format: usize,
    pub original: Vec<(String, String)>,
    pub corrected: Vec<(String, String)>,
}

pub fn data_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/loghub-2k"
    ))
}

fn read_truth(path: &PathBuf) -> Vec<(String, String)> {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let id = headers.iter().position(|h| h == "EventId").unwrap();
    let tpl = headers.iter().position(|h| h == "EventTemplate").unwrap();
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            (r[id].to_owned(), r[tpl].to_owned())
        })
        .collect()
}

/// Every dataset present, or `None` (with a message) when the data is absent.
pub fn datasets() -> Option<Vec<Dataset>> {
    let dir = data_dir();
    let Ok(formats) = std::fs::read_to_string(dir.join("formats.json")) else {
        assert!(
            !corpus_required(),
            "MESHMON_REQUIRE_CORPUS=1 but the loghub-2k corpus is absent at {}",
            dir.display()
        );
        eprintln!(
            "loghub-2k data absent at {}: skipping the corpus test",
            dir.display()
        );
        return None;
    };
    let formats: serde_json::Value = serde_json::from_str(&formats).unwrap();
    let mut out = Vec::new();
    let mut names: Vec<_> = formats["datasets"].as_object().unwrap().iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (name, ds) in names {
        let log = dir.join(ds["log_file"].as_str().unwrap());
        let text = match std::fs::read_to_string(&log) {
            Ok(t) => t,
            Err(e) => {
                assert!(
                    !corpus_required(),
                    "MESHMON_REQUIRE_CORPUS=1 but {} is unreadable: {e}",
                    log.display()
                );
                eprintln!("{}: {e}: dataset skipped", log.display());
                continue;
            }
        };
        let re = regex::Regex::new(&meshmon_logs::eval::loghub_format_regex(
            ds["log_format"].as_str().unwrap(),
        ))
        .unwrap();
        let mut unmatched = 0;
        let contents = text
            .lines()
            .map(|l| {
                let l = l.trim();
                match re.captures(l) {
                    Some(c) => c["Content"].to_owned(),
                    None => {
                        unmatched += 1;
                        l.to_owned()
                    }
                }
            })
            .collect::<Vec<_>>();
        let base = log.to_string_lossy().trim_end_matches(".log").to_owned();
        let original = read_truth(&PathBuf::from(format!("{base}.log_structured.csv")));
        let corrected = read_truth(&PathBuf::from(format!(
            "{base}.log_structured_corrected.csv"
        )));
        assert_eq!(contents.len(), original.len(), "{name}");
        out.push(Dataset {
            name: name.clone(),
            contents,
            unmatched_format: unmatched,
            original,
            corrected,
        });
    }
    Some(out)
}
