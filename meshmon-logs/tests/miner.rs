//! Pattern miner behaviour: typed wildcards, stable ids through merges and persistence,
//! pattern-set merge, the pattern limit policy and the regex property on edge cases.

use meshmon_logs::pattern::token::{TokenKind, VarKind, tokenize};
use meshmon_logs::pattern::{Miner, MinerConfig, PatternId};

fn kinds(msg: &str) -> Vec<(String, TokenKind)> {
    let mut toks = Vec::new();
    tokenize(msg, &mut toks);
    toks.iter()
        .map(|t| (t.text(msg).to_owned(), t.kind))
        .collect()
}

fn var_of(msg: &str, word: &str) -> VarKind {
    match kinds(msg).into_iter().find(|(t, _)| t == word) {
        Some((_, TokenKind::Var(k))) => k,
        other => panic!("{word:?} in {msg:?} is not a variable: {other:?}"),
    }
}

#[test]
fn typed_wildcards() {
    assert_eq!(var_of("took 42 ms", "42"), VarKind::Number);
    assert_eq!(var_of("x -3.5 y", "-3.5"), VarKind::Number);
    assert_eq!(var_of("at 0x7fed806eb5d", "0x7fed806eb5d"), VarKind::Hex);
    assert_eq!(
        var_of("peer 10.0.0.1:8080 up", "10.0.0.1:8080"),
        VarKind::Ipv4
    );
    assert_eq!(
        var_of(
            "peer fe80::1ff:fe23:4567:890a down",
            "fe80::1ff:fe23:4567:890a"
        ),
        VarKind::Ipv6
    );
    assert_eq!(
        var_of("peer [2001:db8::1]:443 down", "[2001:db8::1]:443"),
        VarKind::Ipv6
    );
    assert_eq!(
        var_of(
            "req 38101a0b-2096-447d-96ea-a692162415ae",
            "38101a0b-2096-447d-96ea-a692162415ae"
        ),
        VarKind::Uuid
    );
    assert_eq!(var_of("timeout after 1m30s", "1m30s"), VarKind::Duration);
    assert_eq!(
        var_of("at 2024-05-01T12:00:00.5Z ok", "2024-05-01T12:00:00.5Z"),
        VarKind::Timestamp
    );
    assert_eq!(
        var_of("open /etc/hosts failed", "/etc/hosts"),
        VarKind::Path
    );
    assert_eq!(
        var_of(r"load C:\Windows\x.dll", r"C:\Windows\x.dll"),
        VarKind::Path
    );
    assert_eq!(
        var_of("GET https://a.b/c?d=1 ok", "https://a.b/c?d=1"),
        VarKind::Url
    );
    assert_eq!(var_of("user=alice logged", "alice"), VarKind::KeyValue);
    assert_eq!(var_of("enabled true", "true"), VarKind::Bool);
    assert_eq!(var_of("block blk_-123 gone", "blk_-123"), VarKind::Alnum);
    // Punctuation splits words; plain words stay constant.
    let k = kinds("error: open(\"x\") failed");
    assert!(
        k.iter()
            .any(|(t, kind)| t == "open" && *kind == TokenKind::Word)
    );
    assert!(
        k.iter()
            .any(|(t, kind)| t == "(" && *kind == TokenKind::Punct)
    );
    // Quoted key=value spans whitespace.
    assert_eq!(
        var_of(r#"tag="View Lock", uid=1"#, r#""View Lock""#),
        VarKind::KeyValue
    );
}

#[test]
fn groups_and_renders() {
    let mut m = Miner::default();
    let a = m.add("Accepted publickey for alice from 10.0.0.1 port 22 ssh2");
    let b = m.add("Accepted publickey for alice from 10.0.0.2 port 2200 ssh2");
    let c = m.add("Failed password for bob from 10.0.0.3 port 22 ssh2");
    assert_eq!(a, b);
    assert_ne!(a, c);
    let p = m.pattern(a).unwrap();
    // `ssh2` is the protocol, a constant with a digit: it stays in the template.
    assert_eq!(
        p.template(),
        "Accepted publickey for alice from <*> port <*> ssh2"
    );
    assert_eq!(
        p.typed_template(),
        "Accepted publickey for alice from <ipv4> port <num> ssh2"
    );
    let vars: Vec<_> = p.variables().collect();
    let top = vars[0].values.top(5);
    assert_eq!(top.len(), 2);
    assert_eq!(top[0].count, 1);
    assert_eq!(p.samples().len(), 2);
    assert_eq!(m.len(), 2);
    assert_eq!(
        m.match_message("Accepted publickey for alice from 1.2.3.4 port 1 ssh2"),
        Some(a)
    );
    assert_eq!(
        m.match_message("Accepted publickey for carol from 1.2.3.4 port 1 ssh2"),
        None
    );
    // Lists of varying length are one variable too.
    let l1 = m.add("ask 10.0.0.1:50010 to delete blk_1 blk_2");
    let l2 = m.add("ask 10.0.0.2:50010 to delete blk_3 blk_4 blk_5 blk_6");
    assert_eq!(l1, l2);
    let re = regex::Regex::new(&m.pattern(l1).unwrap().regex()).unwrap();
    assert!(re.is_match("ask 10.0.0.2:50010 to delete blk_3 blk_4 blk_5 blk_6"));
}

#[test]
fn enough_distinct_values_generalise_and_ids_stay_stable() {
    let mut m = Miner::default();
    let k = m.config().distinct_values;
    let users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
    // Short context (two constant words): the configured number of values is needed.
    let ids: Vec<PatternId> = users
        .iter()
        .map(|u| m.add(&format!("login {u} ok")))
        .collect();
    // Before k distinct values they are separate patterns; then they merge into the first.
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(m.resolve(*id), ids[0], "message {i}");
    }
    assert!(
        ids[k - 2] != ids[0],
        "{k} values needed before generalising"
    );
    assert_eq!(m.len(), 1);
    let p = m.pattern(ids[3]).unwrap();
    assert_eq!(p.template(), "login <*> ok");
    assert_eq!(p.count(), users.len() as u64);
    assert_eq!(m.stats().merged, (k - 1) as u64);
    // Two values stay two patterns.
    let x = m.add("client SPP initialized");
    let y = m.add("client WindowsUpdateAgent initialized");
    assert_ne!(m.resolve(x), m.resolve(y));
}

#[test]
fn persistence_keeps_ids() {
    let msgs = [
        "connection from 10.0.0.1 closed",
        "cache miss for key user:42",
        "connection from 10.0.0.9 closed",
        "worker 3 started in 12ms",
    ];
    let mut m = Miner::default();
    let ids: Vec<_> = msgs.iter().map(|s| m.add(s)).collect();
    let json = serde_json::to_string(&m).unwrap();
    let mut back: Miner = serde_json::from_str(&json).unwrap();
    assert_eq!(back.len(), m.len());
    assert_eq!(back.stats(), m.stats());
    for (s, id) in msgs.iter().zip(&ids) {
        assert_eq!(back.add(s), *id, "{s}");
    }
    // New patterns get fresh ids after the restored ones.
    let new = back.add("completely different message");
    assert!(new.get() > ids.iter().map(|i| i.get()).max().unwrap());
    // Aliases survive too.
    let mut m = Miner::default();
    let first = m.add("removing a");
    let aliased = m.add("removing b");
    assert_ne!(aliased, first);
    for w in ["c", "d", "e"] {
        m.add(&format!("removing {w}"));
    }
    assert_eq!(m.resolve(aliased), first);
    assert!(!m.is_live(aliased) && m.is_live(first));
    let back: Miner = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(back.resolve(aliased), first);
    assert_eq!(back.pattern(aliased).unwrap().template(), "removing <*>");
}

#[test]
fn merge_pattern_sets() {
    let mut a = Miner::default();
    let mut b = Miner::default();
    let a1 = a.add("disk /dev/sda1 is 91% full");
    let b1 = b.add("retrying in 5s");
    let b2 = b.add("disk /dev/sdb2 is 99% full");
    let map = a.merge(&b);
    assert_eq!(map[&b2], a1);
    let new = map[&b1];
    assert_ne!(new, a1);
    assert_eq!(a.pattern(a1).unwrap().count(), 2);
    assert_eq!(a.pattern(new).unwrap().template(), "retrying in <*>");
    assert_eq!(a.add("retrying in 10s"), new);
}

#[test]
fn pattern_limit_policy_is_counted() {
    let mut cfg = MinerConfig::default();
    cfg.max_patterns = 2;
    let mut m = Miner::new(cfg).unwrap();
    let a = m.add("alpha one");
    let b = m.add("beta two three");
    // Same bucket as "alpha one" but a different word: joins it (forced).
    assert_eq!(m.add("alpha uno"), a);
    assert_eq!(m.stats().forced, 1);
    // Nothing similar: the overflow id.
    assert_eq!(m.add("gamma"), PatternId::OVERFLOW);
    assert_eq!(m.stats().overflowed, 1);
    assert_eq!(m.len(), 2);
    assert_ne!(a, b);
    // The forced pattern's regex still matches what it absorbed.
    let re = regex::Regex::new(&m.pattern(a).unwrap().regex()).unwrap();
    assert!(re.is_match("alpha one") && re.is_match("alpha uno"));
}

#[test]
fn regex_property_on_edge_cases() {
    let mut cfg = MinerConfig::default();
    cfg.max_tokens = 8;
    let mut m = Miner::new(cfg).unwrap();
    let msgs = [
        "",
        "   ",
        "tag=\"View Lock\" name=x",
        "tag=\"\" name=y",
        "unicode\u{a0}nbsp 12 ünïcödé",
        "a b c d e f g h i j k l m n",
        "a b c d e f g 1 2 3 4 5 6 7 8 9",
        "weird [[[ ))) ((( \"\"\" ''' 1",
        "tabs\tand\nnewlines 3",
        "ends with dots...",
        "value=${x}+$1 (?i) \\d+ .* ^$",
        "k=\"unterminated quote here 5",
        "x=1,y=2;z=\"a b\",w",
        "sent 10 (5) 20 (6 KB) done",
        "sent 10 (5) 20 (6 KB) done (7)",
        "sent () k= (9) v=\"\" []",
        "x (1)",
        "(2) y",
        "<1 sec >5 ~3 <4",
    ];
    let mut ids = Vec::new();
    for s in msgs {
        ids.push(m.add(s));
    }
    for (s, id) in msgs.iter().zip(ids) {
        let p = m.pattern(id).unwrap();
        let re = regex::Regex::new(&p.regex()).unwrap();
        assert!(re.is_match(s), "{s:?} !~ {}", p.regex());
    }
    let long = msgs.iter().filter(|s| kinds(s).len() > 8).count();
    assert!(long >= 2);
    assert_eq!(m.stats().truncated, long as u64);
}

#[test]
fn first_word_generalises_with_evidence_and_persists() {
    let mut m = Miner::default();
    let progs = [
        "chrome.exe",
        "Dropbox.exe",
        "svchost.exe",
        "outlook.exe",
        "git.exe",
        "curl.exe",
    ];
    let ids: Vec<PatternId> = progs
        .iter()
        .map(|p| {
            m.add(&format!(
                "{p} - proxy.example.org:5070 open through proxy proxy.example.org:5070 HTTPS"
            ))
        })
        .collect();
    // Distinct patterns until enough programs were seen.
    assert_ne!(ids[0], ids[1]);
    for id in &ids {
        assert_eq!(m.resolve(*id), ids[0]);
    }
    let p = m.pattern(ids[0]).unwrap();
    // `host:port` renders as two variables (the Loghub-2.0 convention).
    assert_eq!(
        p.template(),
        "<*> - <*>:<*> open through proxy <*>:<*> HTTPS"
    );
    // A new program joins directly, also after a restart.
    let mut back: Miner = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    let line =
        "firefox.exe - proxy.example.org:5070 open through proxy proxy.example.org:5070 HTTPS";
    assert_eq!(back.add(line), ids[0]);
    assert_eq!(m.add(line), ids[0]);
    // Single-word messages are events, never generalised.
    for w in [
        "closeQs",
        "cancelAutohide",
        "suspendAutohide",
        "instantCollapse",
        "resumeAutohide",
        "isMusicActive",
    ] {
        m.add(w);
    }
    assert!(m.patterns().all(|p| p.template() != "<*>"));
    // Nor do messages whose first token is a typed variable join a generalised word.
    let n = m.add("12345 - proxy.example.org:5070 open through proxy proxy.example.org:5070 HTTPS");
    assert_ne!(n, ids[0]);
}

/// Failure class of issue 15: a low-cardinality variable in a long context
/// (`session opened for user alice / bob / carol`) is one pattern after three values,
/// while event words in the same position (`VM Paused` / `VM Resumed`, methods) stay
/// distinct patterns.
#[test]
fn low_cardinality_variables_generalise_event_words_do_not() {
    let mut m = Miner::default();
    let ids: Vec<PatternId> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| m.add(&format!("session opened for user {u} from 10.0.0.1")))
        .collect();
    assert_eq!(m.resolve(ids[1]), ids[0]);
    assert_eq!(m.resolve(ids[2]), ids[0]);
    assert_eq!(
        m.pattern(ids[0]).unwrap().template(),
        "session opened for user <*> from <*>"
    );
    let ev: Vec<PatternId> = ["Paused", "Resumed", "Started", "Stopped"]
        .iter()
        .map(|e| m.add(&format!("[instance: 7f3e-1] VM {e} (Lifecycle Event)")))
        .collect();
    let live: std::collections::HashSet<_> = ev.iter().map(|i| m.resolve(*i)).collect();
    assert_eq!(live.len(), 4, "VM lifecycle events stay distinct");
    let methods: Vec<PatternId> = ["GET", "POST", "DELETE"]
        .iter()
        .map(|x| {
            m.add(&format!(
                "10.0.0.1 \"{x} /v2/servers HTTP/1.1\" status: 200 len: 12 time: 0.1"
            ))
        })
        .collect();
    let methods: std::collections::HashSet<_> = methods.iter().map(|i| m.resolve(*i)).collect();
    assert_eq!(methods.len(), 3);
}

/// Failure class of issue 15: constants holding digits stay constants.
#[test]
fn constants_with_digits_stay_constants() {
    for (msg, word) in [
        ("handshake done using TLSv1.3 cipher x", "TLSv1.3"),
        ("built for linux x86_64 today", "x86_64"),
        ("GET /a HTTP/1.1 sent", "HTTP/1.1"),
        ("Accepted key from 10.0.0.1 port 22 ssh2", "ssh2"),
    ] {
        let k = kinds(msg);
        assert!(
            k.iter()
                .any(|(t, kind)| t == word && *kind == TokenKind::Word),
            "{word} in {msg:?}: {k:?}"
        );
    }
    // Words with digits that are not well-known names are still variables.
    assert_eq!(var_of("node dn228 up", "dn228"), VarKind::Alnum);
}

/// Failure class of issue 15: `host:port` with a host name is one variable like
/// `ip:port`, so both shapes share a pattern; `File.java:42` stays a code location.
#[test]
fn host_port_glued_is_one_variable() {
    let mut m = Miner::default();
    let a = m.add("dial api.example.com:443 failed");
    let b = m.add("dial 10.0.0.1:443 failed");
    let c = m.add("dial localhost:443 failed");
    assert_eq!(m.resolve(a), m.resolve(b));
    assert_eq!(m.resolve(c), m.resolve(b));
    let k = kinds("at CartService.java:88 boom");
    assert!(
        k.iter()
            .any(|(t, kind)| t == "CartService.java" && *kind == TokenKind::Word)
    );
}

#[test]
fn configs_are_validated_with_typed_errors() {
    use meshmon_logs::multiline::{self, Continuation, MultiLine, MultiLineConfig};
    use meshmon_logs::pattern::ConfigError;
    let mut c = MinerConfig::default();
    c.distinct_values = 1;
    assert_eq!(
        Miner::new(c).err(),
        Some(ConfigError::TooSmall {
            field: "distinct_values",
            value: 1,
            min: 2
        })
    );
    // A persisted state with a bad config is refused, not silently used.
    let mut json: serde_json::Value = serde_json::to_value(Miner::default()).unwrap();
    json["config"]["max_patterns"] = 0.into();
    let err = serde_json::from_value::<Miner>(json)
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_patterns"), "{err}");
    let mut m = MultiLineConfig::default();
    m.max_lines = 0;
    assert_eq!(
        MultiLine::new(Continuation::Indented, m).err(),
        Some(multiline::ConfigError::Zero { field: "max_lines" })
    );
}

/// Ids stay stable and counts are summed when pattern sets merge (two miners, or the
/// state persisted before a restart), including ids that were aliased by convergence.
#[test]
fn pattern_set_merge_keeps_ids_and_sums_counts() {
    use meshmon_logs::pattern::PatternSet;
    use meshmon_logs::{LogRecord, Status};
    let rec = |m: &str, s: Status| {
        let mut r = LogRecord::new(m);
        r.status = s;
        r
    };
    let mut a = PatternSet::default();
    let a1 = a.observe(&rec("disk /dev/sda1 is 91% full", Status::Warning));
    // Before a restart: persist, restore, keep counting under the same ids.
    let mut restored: PatternSet =
        serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(
        restored.observe(&rec("disk /dev/sdb2 is 99% full", Status::Error)),
        a1
    );
    let c = restored.counts(a1).unwrap();
    assert_eq!((c.get(Status::Warning), c.get(Status::Error)), (1, 1));
    // Another miner saw other users first; its aliased ids map too.
    let mut b = PatternSet::default();
    let first = b.observe(&rec("login alice ok", Status::Info));
    let second = b.observe(&rec("login bob ok", Status::Info));
    for u in ["carol", "dave", "erin"] {
        b.observe(&rec(&format!("login {u} ok"), Status::Info));
    }
    assert_eq!(b.resolve(second), first);
    assert_eq!(
        b.counts(second).unwrap().total(),
        5,
        "counts follow the merge"
    );
    b.observe(&rec("disk /dev/sdc1 is 50% full", Status::Warning));
    let map = restored.merge(&b);
    assert_eq!(map[&second], map[&first]);
    let login = restored.resolve(map[&first]);
    assert_eq!(restored.counts(login).unwrap().get(Status::Info), 5);
    assert_eq!(restored.pattern(login).unwrap().template(), "login <*> ok");
    let disk = restored.counts(a1).unwrap();
    assert_eq!(disk.total(), 3);
    assert_eq!(disk.get(Status::Warning), 2);
}

/// The pattern bound holds through `PatternSet` and is counted; refused messages are
/// counted under the overflow id, by status.
#[test]
fn pattern_set_is_bounded_and_counts_overflow() {
    use meshmon_logs::pattern::PatternSet;
    use meshmon_logs::{LogRecord, Status};
    let mut cfg = MinerConfig::default();
    cfg.max_patterns = 2;
    let mut set = PatternSet::new(cfg).unwrap();
    set.observe(&LogRecord::new("alpha one"));
    set.observe(&LogRecord::new("beta two three"));
    let mut r = LogRecord::new("gamma");
    r.status = Status::Error;
    assert_eq!(set.observe(&r), PatternId::OVERFLOW);
    assert_eq!(set.len(), 2);
    assert_eq!(set.miner().stats().overflowed, 1);
    assert_eq!(
        set.counts(PatternId::OVERFLOW).unwrap().get(Status::Error),
        1
    );
    assert_eq!(set.stats().records, 3);
}

#[test]
fn variables_render_by_the_parts_all_their_values_share() {
    let mut m = Miner::default();
    // An address with its port: two variables, whether the host is an IP or a name.
    let a = m.add("dial api.example.com:443 failed");
    m.add("dial 10.0.0.1:8080 failed");
    m.add("dial /10.0.0.2:50010 failed");
    assert_eq!(m.pattern(a).unwrap().template(), "dial <*>:<*> failed");
    // A size and its unit: the unit stays while every value had it.
    let b = m.add("sent 16.0 KB to peer");
    m.add("sent 512 KB to peer");
    assert_eq!(m.pattern(b).unwrap().template(), "sent <*> KB to peer");
    m.add("sent 3 MB to peer");
    assert_eq!(m.pattern(b).unwrap().template(), "sent <*> <*> to peer");
    // A fixed-length list renders each element; a varying length is one variable.
    let c = m.add("irq 5 11 disabled");
    m.add("irq 7 12 disabled");
    assert_eq!(m.pattern(c).unwrap().template(), "irq <*> <*> disabled");
    m.add("irq 7 12 13 disabled");
    assert_eq!(m.pattern(c).unwrap().template(), "irq <*> disabled");
    // `:` separates next to a number only: two host names glued stay one variable, a
    // word glued after a port is a literal part.
    let i = m.add("updated for cp-1.example.us:cp-1.example.us now");
    m.add("updated for cp-2.example.us:cp-2.example.us now");
    assert_eq!(m.pattern(i).unwrap().template(), "updated for <*> now");
    let j = m.add("dn 10.0.0.1:50010:Got exception");
    m.add("dn 10.0.0.2:50010:Got exception");
    assert_eq!(m.pattern(j).unwrap().template(), "dn <*>:<*>:Got exception");
    // Date-times are one value; clock times split like the labels write them.
    let g = m.add("pushed at 2024-05-01T12:00:00Z/12 ok");
    m.add("pushed at 2024-05-02T13:10:00Z/7 ok");
    assert_eq!(m.pattern(g).unwrap().template(), "pushed at <*> ok");
    let h = m.add("mail delay=00:01:02 queued");
    m.add("mail delay=00:00:07 queued");
    assert_eq!(
        m.pattern(h).unwrap().template(),
        "mail delay=<*>:<*>:<*> queued"
    );
    // URLs, IPv6 addresses and plain words stay one variable.
    let d = m.add("GET http://10.0.0.1:80/x ok");
    m.add("GET http://10.0.0.2:81/y ok");
    assert_eq!(m.pattern(d).unwrap().template(), "GET <*> ok");
    let e = m.add("peer [fe80::1]:443 up");
    m.add("peer [fe80::2]:443 up");
    assert_eq!(m.pattern(e).unwrap().template(), "peer <*> up");
    // A word-valued variable never renders one of its values.
    for u in ["alice", "bob", "carol", "dave", "erin"] {
        m.add(&format!("login ok for user {u}"));
    }
    let f = m.add("login ok for user frank");
    assert_eq!(m.pattern(f).unwrap().template(), "login ok for user <*>");
    // The shape survives persistence and merging pattern sets.
    let back: Miner = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(back.pattern(a).unwrap().template(), "dial <*>:<*> failed");
    let mut other = Miner::default();
    other.add("dial 10.9.9.9:53 failed");
    let map = other.merge(&m);
    let into = map[&a];
    assert_eq!(
        other.pattern(into).unwrap().template(),
        "dial <*>:<*> failed"
    );
    other.add("dial 10.9.9.9 failed");
    assert_eq!(other.pattern(into).unwrap().template(), "dial <*> failed");
    // Rendering never changes grouping: the regex still matches every member.
    let re = regex::Regex::new(&m.pattern(b).unwrap().regex()).unwrap();
    assert!(re.is_match("sent 16.0 KB to peer") && re.is_match("sent 3 MB to peer"));
}

#[test]
fn call_names_with_digits_stay_constants() {
    // A function name with a digit before `(` is a constant: `jk2_init()`.
    let k = kinds("jk2_init() Found child 6725 in scoreboard slot 10");
    assert_eq!(k[0], ("jk2_init".to_owned(), TokenKind::Word));
    let mut m = Miner::default();
    let a = m.add("jk2_init() Found child 6725 in scoreboard slot 10");
    m.add("jk2_init() Found child 6726 in scoreboard slot 8");
    assert_eq!(
        m.pattern(a).unwrap().template(),
        "jk2_init() Found child <*> in scoreboard slot <*>"
    );
    // The arguments are still tokenised: `ssl3_read(42)` keeps its number variable.
    let k = kinds("ssl3_read(42) failed");
    assert_eq!(k[0], ("ssl3_read".to_owned(), TokenKind::Word));
    assert_eq!(k[2], ("42".to_owned(), TokenKind::Var(VarKind::Number)));
    // No digit in the name: `LOCAL(0)` stays one variable (it alternates with addresses).
    assert!(matches!(
        var_of("synchronized to LOCAL(0), stratum 10", "LOCAL(0)"),
        VarKind::Alnum
    ));
    // Too short to be a name: `x1(y)` is a value.
    assert!(matches!(kinds("got x1(y) here")[1].1, TokenKind::Var(_)));
}

#[test]
fn a_numbered_name_that_never_varies_renders_as_itself() {
    let mut m = Miner::default();
    // `eth1` is masked (a word with a digit) but only ever held one value.
    let a = m.add("DHCPDISCOVER from 00:11:22:33:44:55 via eth1");
    assert_eq!(
        m.pattern(a).unwrap().template(),
        "DHCPDISCOVER from <*> via <*>"
    );
    m.add("DHCPDISCOVER from 00:11:22:33:44:66 via eth1");
    assert_eq!(
        m.pattern(a).unwrap().template(),
        "DHCPDISCOVER from <*> via eth1"
    );
    // Once it varies it is a variable again; ids and grouping never changed.
    assert_eq!(m.add("DHCPDISCOVER from 00:11:22:33:44:77 via eth0"), a);
    assert_eq!(
        m.pattern(a).unwrap().template(),
        "DHCPDISCOVER from <*> via <*>"
    );
    // Long or digit-heavy ids are never rendered: `blk_1234` stays a variable.
    let b = m.add("deleting blk_1234 now");
    m.add("deleting blk_1234 now");
    assert_eq!(m.pattern(b).unwrap().template(), "deleting <*> now");
}

/// Mines `lines` with and without the parsing cache and asserts identical results: ids
/// handed out, every pattern (template, typed template, regex, count, variables), stats.
pub fn assert_cache_changes_nothing(lines: &[String]) -> u64 {
    let mut cfg = MinerConfig::default();
    cfg.match_cache = 1024;
    let mut cached = Miner::new(cfg.clone()).unwrap();
    cfg.match_cache = 0;
    let mut plain = Miner::new(cfg).unwrap();
    for l in lines {
        assert_eq!(cached.add(l), plain.add(l), "{l:?}");
    }
    let a: Vec<_> = cached.patterns().collect();
    let b: Vec<_> = plain.patterns().collect();
    assert_eq!(a, b, "patterns differ");
    let mut sa = cached.stats().clone();
    let hits = sa.cache_hits;
    sa.cache_hits = 0;
    assert_eq!(&sa, plain.stats());
    hits
}

#[test]
fn the_parsing_cache_never_changes_a_result() {
    // Values re-drawn digit by digit, next to constants whose digits matter.
    let shapes = [
        "GET /api/v1/users/# HTTP/#.1 200 took #ms",
        "negotiated TLSv1.# with 10.0.#.#:#",
        "arch x8#_64 kernel #.#.#",
        "value 0x#f# and #x1f at offset #",
        "jk#_init() Found child # in scoreboard slot #",
        "ssl#_read_bytes_internal(#) failed after # tries",
        "worker-# processed # items in #.#s (# KB) ok",
        "instruction......0x# x8#......done",
        "blk_-# replicated to 10.#.#.#:50010 from /10.#.#.#:# size #",
    ];
    let mut seed = 0x5eedu64;
    let mut next = || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut lines = Vec::new();
    for _ in 0..20_000 {
        let shape = shapes[(next() % shapes.len() as u64) as usize];
        let mut l = String::new();
        for c in shape.chars() {
            if c == '#' {
                // Mostly one digit: the same skeleton recurs.
                let n = if next() % 20 == 0 { 2 } else { 1 };
                for _ in 0..n {
                    l.push(char::from(b'0' + (next() % 10) as u8));
                }
            } else {
                l.push(c);
            }
        }
        lines.push(l);
    }
    let hits = assert_cache_changes_nothing(&lines);
    assert!(hits > 1_000, "the cache is used: {hits} hits");
    // A stream that never repeats a skeleton bypasses the cache (adaptive), and the
    // cache comes back when repetition returns; results stay identical throughout.
    let mut mixed: Vec<String> = (0..40_000u64)
        .map(|i| {
            let mut z = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let w: String = (0..8)
                .map(|_| {
                    z = (z ^ (z >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    char::from(b'a' + (z >> 59) as u8 % 26)
                })
                .collect();
            format!("event {w} {i}")
        })
        .collect();
    let unique_hits = assert_cache_changes_nothing(&mixed);
    assert!(
        unique_hits < 4_000,
        "{unique_hits} hits on unique skeletons"
    );
    mixed.extend(lines.iter().cloned());
    assert_cache_changes_nothing(&mixed);
    // Digits that name a constant keep messages apart.
    let mut c = MinerConfig::default();
    c.match_cache = 64;
    let mut m = Miner::new(c).unwrap();
    let a = m.add("proto HTTP/1.1 ok");
    let b = m.add("proto HTTP/2 ok");
    assert_ne!(a, b);
    assert_eq!(m.pattern(a).unwrap().template(), "proto HTTP/1.1 ok");
}
