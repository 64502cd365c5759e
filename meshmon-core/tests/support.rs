//! The test helpers themselves: a temporary directory that is gone after a panic, and
//! the corpus gate.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use crate::test_util::{TempDir, corpus, corpus_required};

#[test]
fn temp_dir_is_removed_when_the_test_panics() {
    let mut seen: Option<PathBuf> = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let dir = TempDir::new("support").unwrap();
        let f = dir.write("a.txt", b"x").unwrap();
        assert!(f.exists());
        seen = Some(dir.path().to_owned());
        panic!("deliberate");
    }));
    assert!(result.is_err());
    let seen = seen.unwrap();
    assert!(!seen.exists(), "{} survived the panic", seen.display());
}

#[test]
fn temp_dirs_are_distinct() {
    let a = TempDir::new("support").unwrap();
    let b = TempDir::new("support").unwrap();
    assert_ne!(a.path(), b.path());
    assert!(a.path().is_dir() && b.path().is_dir());
}

#[test]
fn corpus_gate_follows_the_variable() {
    let dir = TempDir::new("corpus").unwrap();
    assert_eq!(corpus(dir.path(), "present"), Some(dir.path().to_owned()));
    let missing = dir.join("absent");
    let r = catch_unwind(|| corpus(&missing, "absent"));
    if corpus_required() {
        assert!(
            r.is_err(),
            "a missing corpus must fail under MESHMON_REQUIRE_CORPUS=1"
        );
    } else {
        assert_eq!(r.unwrap(), None);
    }
}
