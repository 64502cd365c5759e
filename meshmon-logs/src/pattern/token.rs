//! Tokenisation and typed masking: the part of pattern mining that needs no per-source
//! configuration.
//!
//! A message is split on ASCII whitespace into words; each word is then either
//! recognised whole as a typed variable (IPv4/IPv6 with optional port, UUID, URL, path,
//! timestamp, duration, number, hex) or split further at punctuation (`= : , ; ( ) [ ] {
//! } < > " ' |`) into sub-tokens. A sub-token containing a digit is a variable, except
//! well-known names that contain digits (`HTTP/1.1`, `TLSv1.3`, `x86_64`, `ssh2`,
//! `sha256`...: protocols, architectures, encodings, digests); the value of a
//! `key=value` pair is a variable (quotes included, empty when nothing follows `=`);
//! `true`/`false`/`null` are variables. Runs of variables joined only by `:` collapse
//! into one (times, `host:port`, MAC addresses), and so does `host.name:port`.
//!
//! The tokeniser writes into a caller-owned buffer of [`Token`]s (byte ranges into the
//! message), so tokenising allocates nothing once the buffer has grown.

use serde::{Deserialize, Serialize};

/// The type of a masked (variable) token, recognised without per-source configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VarKind {
    /// A decimal number, optionally signed or fractional: `42`, `-3.5`.
    Number,
    /// A hexadecimal number: `0x1f`, `7fed806eb5d` (with at least one digit).
    Hex,
    /// An IPv4 address with an optional port: `10.0.0.1`, `10.0.0.1:8080`.
    Ipv4,
    /// An IPv6 address with an optional port: `fe80::1`, `[::1]:443`.
    Ipv6,
    /// A UUID: `38101a0b-2096-447d-96ea-a692162415ae`.
    Uuid,
    /// A duration: `250ms`, `1.5s`, `3m20s`.
    Duration,
    /// A date or time: `2017-05-16T00:00:00.008Z`, `12:01:01`.
    Timestamp,
    /// A file system path: `/etc/hosts`, `C:\Windows\x.dll`.
    Path,
    /// A URL: `https://example.com/a?b=1`.
    Url,
    /// The value of a `key=value` pair.
    KeyValue,
    /// `true`, `false`, `null`.
    Bool,
    /// Any other token containing a digit: `blk_-123`, `dn228`, `R02-M1-N0`.
    Alnum,
    /// A token absorbed as variable by clustering (constants that differ across messages).
    Any,
}

impl VarKind {
    /// The typed placeholder used in the typed template rendering: `<num>`, `<ip>`...
    pub fn placeholder(self) -> &'static str {
        match self {
            VarKind::Number => "<num>",
            VarKind::Hex => "<hex>",
            VarKind::Ipv4 => "<ipv4>",
            VarKind::Ipv6 => "<ipv6>",
            VarKind::Uuid => "<uuid>",
            VarKind::Duration => "<duration>",
            VarKind::Timestamp => "<timestamp>",
            VarKind::Path => "<path>",
            VarKind::Url => "<url>",
            VarKind::KeyValue => "<value>",
            VarKind::Bool => "<bool>",
            VarKind::Alnum => "<id>",
            VarKind::Any => "<*>",
        }
    }
}

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A constant word.
    Word,
    /// A punctuation byte that splits words (`=`, `:`, `(`...).
    Punct,
    /// A masked variable of the given type.
    Var(VarKind),
    /// A constant pinned by the caller (a structured field that defines the event);
    /// the tokeniser never produces it, [`crate::pattern::PatternSet`] does.
    Fixed,
}

/// One token: a byte range of the message, its kind, and whether whitespace precedes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// Start byte offset in the message.
    pub start: u32,
    /// End byte offset (exclusive).
    pub end: u32,
    /// The token's kind.
    pub kind: TokenKind,
    /// Whether ASCII whitespace separates this token from the previous one.
    pub space_before: bool,
    /// A parenthesised variable followed this token and was left out of the skeleton
    /// (`812 bytes (0.79 KB) sent` tokenises like `0 bytes sent`).
    pub group_after: bool,
}

impl Token {
    /// The token's text in `msg`.
    pub fn text<'a>(&self, msg: &'a str) -> &'a str {
        msg.get(self.start as usize..self.end as usize)
            .unwrap_or("")
    }
}

/// ASCII whitespace as the tokeniser sees it (the separators; also what the rendered
/// regexes use, so the two agree exactly).
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

#[inline]
fn is_split(b: u8) -> bool {
    matches!(
        b,
        b'=' | b':'
            | b','
            | b';'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'<'
            | b'>'
            | b'"'
            | b'\''
            | b'|'
    )
}

#[inline]
fn is_opener(b: u8) -> bool {
    matches!(b, b'(' | b'[' | b'{' | b'<' | b'"' | b'\'')
}

#[inline]
fn is_trailer(b: u8) -> bool {
    matches!(
        b,
        b')' | b']' | b'}' | b'>' | b'"' | b'\'' | b',' | b';' | b'.' | b':' | b'!' | b'?'
    )
}

#[inline]
fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn all(s: &[u8], f: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.iter().all(|&b| f(b))
}

fn is_number(s: &[u8]) -> bool {
    let s = match s.first() {
        Some(b'-' | b'+') => &s[1..],
        _ => s,
    };
    if s.is_empty() || !s[0].is_ascii_digit() {
        return false;
    }
    let mut dot = false;
    for &b in s {
        if b == b'.' {
            if dot {
                return false;
            }
            dot = true;
        } else if !b.is_ascii_digit() {
            return false;
        }
    }
    s.last().is_some_and(|b| b.is_ascii_digit())
}

fn is_hex_token(s: &[u8]) -> bool {
    if let Some(rest) = s.strip_prefix(b"0x").or_else(|| s.strip_prefix(b"0X")) {
        return all(rest, is_hex);
    }
    s.len() >= 6 && all(s, is_hex) && s.iter().any(u8::is_ascii_digit)
}

fn is_ipv4(s: &[u8]) -> bool {
    let (addr, port) = match s.iter().position(|&b| b == b':') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    if let Some(p) = port
        && !all(p, |b| b.is_ascii_digit())
    {
        return false;
    }
    let mut parts = 0;
    for part in addr.split(|&b| b == b'.') {
        parts += 1;
        if part.is_empty() || part.len() > 3 || !all(part, |b| b.is_ascii_digit()) {
            return false;
        }
    }
    parts == 4
}

fn is_ipv6(s: &[u8]) -> bool {
    // `[addr]:port` or a bare address.
    let addr = if let Some(rest) = s.strip_prefix(b"[") {
        match rest.iter().position(|&b| b == b']') {
            Some(i) => {
                let tail = &rest[i + 1..];
                if !tail.is_empty() {
                    match tail.strip_prefix(b":") {
                        Some(p) if all(p, |b| b.is_ascii_digit()) => {}
                        _ => return false,
                    }
                }
                &rest[..i]
            }
            None => return false,
        }
    } else {
        s
    };
    let colons = addr.iter().filter(|&&b| b == b':').count();
    if !(2..=7).contains(&colons) || addr.len() < 3 {
        return false;
    }
    // Allow an embedded IPv4 tail (`::ffff:10.0.0.1`).
    let (head, v4) = match addr.iter().rposition(|&b| b == b':') {
        Some(i) if addr[i + 1..].contains(&b'.') => (&addr[..=i], Some(&addr[i + 1..])),
        _ => (addr, None),
    };
    if let Some(v4) = v4
        && !is_ipv4(v4)
    {
        return false;
    }
    let mut groups_ok = true;
    for g in head.split(|&b| b == b':') {
        if g.len() > 4 || !g.iter().all(|&b| is_hex(b)) {
            groups_ok = false;
        }
    }
    // `a:b:c` words like `foo:bar:baz` are not addresses: require `::` or 7 colons, and
    // at least one digit.
    groups_ok
        && (colons == 7 || addr.windows(2).any(|w| w == b"::"))
        && addr.iter().any(u8::is_ascii_digit)
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => is_hex(b),
        })
}

fn is_duration(s: &[u8]) -> bool {
    // One or more `<number><unit>` groups: 1h2m3.5s, 250ms, 10µs.
    let mut i = 0;
    let mut groups = 0;
    while i < s.len() {
        let start = i;
        while i < s.len() && (s[i].is_ascii_digit() || s[i] == b'.') {
            i += 1;
        }
        if i == start || !s[start].is_ascii_digit() {
            return false;
        }
        let unit_start = i;
        while i < s.len() && !s[i].is_ascii_digit() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        if !matches!(
            unit,
            b"ns" | b"us" | b"\xc2\xb5s" | b"ms" | b"s" | b"m" | b"h" | b"d"
        ) {
            return false;
        }
        groups += 1;
    }
    groups > 0
}

fn is_timestamp(s: &[u8]) -> bool {
    // ISO 8601 / RFC 3339 dates and date-times: 2017-05-16, 2017-05-16T00:00:00.008Z;
    // clock times: 12:01:01, 12:01:01.123.
    let digits = |r: &[u8]| all(r, |b| b.is_ascii_digit());
    if s.len() >= 10 && digits(&s[..4]) && s[4] == b'-' && digits(&s[5..7]) && s[7] == b'-' {
        return digits(&s[8..10])
            && s[10..].iter().all(|&b| {
                b.is_ascii_digit() || matches!(b, b'T' | b'Z' | b':' | b'.' | b'+' | b'-' | b',')
            });
    }
    if s.len() >= 5 && digits(&s[..2]) && s[2] == b':' && digits(&s[3..5]) {
        return s[5..]
            .iter()
            .all(|&b| b.is_ascii_digit() || matches!(b, b':' | b'.' | b',' | b'Z'));
    }
    false
}

fn is_url(s: &[u8]) -> bool {
    let Some(i) = s.windows(3).position(|w| w == b"://") else {
        return false;
    };
    i > 0
        && s[0].is_ascii_alphabetic()
        && s[..i]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'))
}

fn is_path(s: &[u8]) -> bool {
    // Unix absolute (at least two components, or one with a digit/dot), home-relative,
    // Windows drive paths.
    if let Some(rest) = s.strip_prefix(b"/") {
        if rest.is_empty() {
            return false;
        }
        return rest.contains(&b'/') && !rest.starts_with(b"/");
    }
    if s.starts_with(b"~/") || s.starts_with(b"./") || s.starts_with(b"../") {
        return s.len() > 2;
    }
    s.len() > 3 && s[0].is_ascii_alphabetic() && s[1] == b':' && s[2] == b'\\'
}

fn is_bool(s: &[u8]) -> bool {
    s.eq_ignore_ascii_case(b"true")
        || s.eq_ignore_ascii_case(b"false")
        || s.eq_ignore_ascii_case(b"null")
}

/// Recognises a whole word (outer punctuation already stripped) as a typed variable.
pub(crate) fn classify_word(s: &[u8]) -> Option<VarKind> {
    let first = *s.first()?;
    if first.is_ascii_digit() || first == b'-' || first == b'+' {
        if is_number(s) {
            return Some(VarKind::Number);
        }
        if is_ipv4(s) {
            return Some(VarKind::Ipv4);
        }
        if is_timestamp(s) {
            return Some(VarKind::Timestamp);
        }
        if is_duration(s) {
            return Some(VarKind::Duration);
        }
    }
    if is_uuid(s) {
        return Some(VarKind::Uuid);
    }
    if is_hex_token(s) {
        return Some(VarKind::Hex);
    }
    if (first == b'/' || first == b'~' || first == b'.' || s.get(1) == Some(&b':')) && is_path(s) {
        return Some(VarKind::Path);
    }
    if s.contains(&b':') {
        if is_url(s) {
            return Some(VarKind::Url);
        }
        if is_ipv6(s) {
            return Some(VarKind::Ipv6);
        }
    }
    None
}

/// The first run of two or more dots that is not a relative path (`../`).
fn dot_run(w: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < w.len() {
        if w[i] == b'.' && w[i + 1] == b'.' {
            let mut j = i + 2;
            while j < w.len() && w[j] == b'.' {
                j += 1;
            }
            if !(j - i == 2 && w.get(j) == Some(&b'/')) {
                return Some((i, j));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    None
}

/// Well-known names that contain digits but are constants (protocols, TLS versions,
/// architectures, encodings, digests): the rule "a word with a digit is a variable"
/// must not swallow them. Compared ASCII-case-insensitively (one `match` on the
/// lower-cased bytes: no allocation, no scan of a list).
fn is_known_constant(s: &[u8]) -> bool {
    if s.len() < 2 || s.len() > 8 || !s.iter().any(u8::is_ascii_digit) {
        return false;
    }
    let mut buf = [0u8; 8];
    for (d, c) in buf.iter_mut().zip(s) {
        *d = c.to_ascii_lowercase();
    }
    matches!(
        &buf[..s.len()],
        b"http/1.0"
            | b"http/1.1"
            | b"http/2"
            | b"http/2.0"
            | b"http/3"
            | b"h2"
            | b"h2c"
            | b"h3"
            | b"http2"
            | b"http3"
            | b"ssh2"
            | b"ssh-2.0"
            | b"tlsv1"
            | b"tlsv1.0"
            | b"tlsv1.1"
            | b"tlsv1.2"
            | b"tlsv1.3"
            | b"tls1.2"
            | b"tls1.3"
            | b"sslv2"
            | b"sslv3"
            | b"dtlsv1.2"
            | b"x86_64"
            | b"x86"
            | b"x64"
            | b"i386"
            | b"i686"
            | b"amd64"
            | b"arm64"
            | b"aarch64"
            | b"armv7"
            | b"armv7l"
            | b"ppc64le"
            | b"s390x"
            | b"ipv4"
            | b"ipv6"
            | b"utf-8"
            | b"utf8"
            | b"utf-16"
            | b"utf16"
            | b"sha1"
            | b"sha224"
            | b"sha256"
            | b"sha384"
            | b"sha512"
            | b"md5"
            | b"crc32"
            | b"base64"
            | b"x509"
            | b"x.509"
            | b"ed25519"
            | b"p-256"
            | b"p-384"
            | b"aes128"
            | b"aes256"
            | b"oauth2"
            | b"log4j"
            | b"log4j2"
            | b"proto3"
            | b"int8"
            | b"int16"
            | b"int32"
            | b"int64"
            | b"uint8"
            | b"uint16"
            | b"uint32"
            | b"uint64"
            | b"float32"
            | b"float64"
            | b"k8s"
            | b"win32"
            | b"win64"
            | b"ext4"
            | b"grpc-web"
            | b"s3"
            | b"ec2"
    )
}

/// Source-file extensions: `name.ext:line` is a code location (constant file name),
/// not `host:port`.
const SOURCE_EXTS: &[&[u8]] = &[
    b"c", b"h", b"cc", b"cpp", b"hpp", b"java", b"kt", b"scala", b"py", b"go", b"rs", b"js", b"ts",
    b"rb", b"php", b"cs", b"swift", b"m",
];

/// `(File.ext:123)`: a stack frame's source location.
fn is_code_location(par: &[u8]) -> bool {
    let Some(inner) = par.strip_prefix(b"(").and_then(|r| r.strip_suffix(b")")) else {
        return false;
    };
    let Some(colon) = inner.iter().rposition(|&c| c == b':') else {
        return false;
    };
    let (file, line) = (&inner[..colon], &inner[colon + 1..]);
    !line.is_empty()
        && line.iter().all(u8::is_ascii_digit)
        && file.iter().rposition(|&c| c == b'.').is_some_and(|d| {
            d > 0
                && SOURCE_EXTS
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(&file[d + 1..]))
        })
}

/// `host.name:port` (a dotted name, not a source file, then a port number): one
/// variable, like `10.0.0.1:443`.
fn is_host_port(core: &[u8], colon: usize) -> bool {
    let (host, port) = (&core[..colon], &core[colon + 1..]);
    let port_ok = !port.is_empty() && port.len() <= 5 && port.iter().all(u8::is_ascii_digit);
    let Some(dot) = host.iter().rposition(|&c| c == b'.') else {
        return port_ok && host == b"localhost";
    };
    port_ok
        && dot > 0
        && !SOURCE_EXTS
            .iter()
            .any(|e| e.eq_ignore_ascii_case(&host[dot + 1..]))
}

/// A function name with a digit before `(`: an identifier (letters, digits, `_`, `.`,
/// `$`) that starts with a letter and holds at least three letters (`jk2_init`,
/// `ssl3_read`, not `x1` nor `n42`; `LOCAL(0)` has no digit in its name and stays one
/// variable).
fn is_call_name(id: &[u8]) -> bool {
    id.iter().any(u8::is_ascii_digit) && is_call_ident(id)
}

fn is_call_ident(id: &[u8]) -> bool {
    id.first().is_some_and(u8::is_ascii_alphabetic)
        && id
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'$'))
        && id.iter().filter(|c| c.is_ascii_alphabetic()).count() >= 3
}

/// A word containing a digit but no `=` (which would make it `key=value` pairs).
fn digit_word(s: &[u8]) -> Option<VarKind> {
    (s.iter().any(u8::is_ascii_digit) && !s.contains(&b'=')).then_some(VarKind::Alnum)
}

fn sub_kind(s: &[u8]) -> TokenKind {
    if is_known_constant(s) {
        TokenKind::Word
    } else if s.iter().any(u8::is_ascii_digit) {
        TokenKind::Var(classify_word(s).unwrap_or(VarKind::Alnum))
    } else if is_bool(s) {
        TokenKind::Var(VarKind::Bool)
    } else {
        TokenKind::Word
    }
}

/// Splits `msg` into tokens, appending to `out` (cleared first).
///
/// Token ranges always fall on UTF-8 character boundaries: every split point is an
/// ASCII byte.
pub fn tokenize(msg: &str, out: &mut Vec<Token>) {
    out.clear();
    let b = msg.as_bytes();
    // Messages longer than u32::MAX bytes are cut for tokenising (never in practice).
    let n = b.len().min(u32::MAX as usize);
    let mut i = 0usize;
    let mut space = false;
    while i < n {
        if is_ws(b[i]) {
            space = true;
            i += 1;
            continue;
        }
        let mut j = i;
        while j < n && !is_ws(b[j]) {
            j += 1;
        }
        i = word(b, i, j, n, space, out);
        space = false;
    }
    post_pass(b, out);
}

const SIZE_UNITS: &[&[u8]] = &[
    b"B", b"KB", b"MB", b"GB", b"TB", b"PB", b"KiB", b"MiB", b"GiB", b"TiB", b"PiB",
];
const TIME_UNITS: &[&[u8]] = &[
    b"ns", b"us", b"ms", b"msec", b"msecs", b"sec", b"secs", b"second", b"seconds", b"min",
    b"mins", b"minute", b"minutes", b"hour", b"hours", b"hr", b"hrs", b"day", b"days",
];
const DAYS: &[&[u8]] = &[b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const MONTHS: &[&[u8]] = &[
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// A day or month name (`Mon`, `Jul`): a date part, a value.
pub(crate) fn is_date_word(w: &[u8]) -> bool {
    DAYS.contains(&w) || MONTHS.contains(&w)
}

/// Joins `<number> <size unit>` into one variable (`16.0 KB`, `384 B`: the unit varies
/// with the value), masks day and month names that are part of a date (`Fri Jul 1`), and
/// joins runs of whitespace-separated variables into one (lists of varying length).
fn post_pass(b: &[u8], out: &mut Vec<Token>) {
    let text = |t: &Token| &b[t.start as usize..t.end as usize];
    let mut w = 0;
    for r in 0..out.len() {
        let t = out[r];
        // A comparison glued to a number is part of the value: `<1`, `>500`, `~3`.
        if w > 0
            && t.kind == TokenKind::Var(VarKind::Number)
            && !t.space_before
            && out[w - 1].kind == TokenKind::Punct
            && matches!(text(&out[w - 1]), b"<" | b">" | b"~")
            && out[w - 1].end == t.start
        {
            out[w - 1].end = t.end;
            out[w - 1].kind = TokenKind::Var(VarKind::Alnum);
            continue;
        }
        // A bound with a time unit is one duration (`<1 sec`, `>5 minutes`), like
        // `00:01` or `12ms`. A plain `42 ms` stays `<*> ms`, as the Loghub labels write it.
        if w > 0
            && t.kind == TokenKind::Word
            && t.space_before
            && out[w - 1].kind == TokenKind::Var(VarKind::Alnum)
            && matches!(b[out[w - 1].start as usize], b'<' | b'>' | b'~')
            && TIME_UNITS.iter().any(|u| u.eq_ignore_ascii_case(text(&t)))
        {
            out[w - 1].end = t.end;
            out[w - 1].kind = TokenKind::Var(VarKind::Duration);
            continue;
        }
        if w > 0
            && t.kind == TokenKind::Word
            && t.space_before
            && out[w - 1].kind == TokenKind::Var(VarKind::Number)
            && t.end - t.start <= 3
            && SIZE_UNITS.contains(&text(&t))
        {
            out[w - 1].end = t.end;
            out[w - 1].kind = TokenKind::Var(VarKind::Alnum);
            continue;
        }
        out[w] = t;
        w += 1;
    }
    out.truncate(w);
    for r in 0..out.len() {
        let t = out[r];
        if t.kind != TokenKind::Word {
            continue;
        }
        let word = text(&t);
        if word.len() != 3 || !word[0].is_ascii_uppercase() {
            continue;
        }
        let next_dateish = out.get(r + 1).is_some_and(|nx| {
            nx.space_before
                && (MONTHS.contains(&text(nx)) || text(nx).first().is_some_and(u8::is_ascii_digit))
        });
        if (DAYS.contains(&word) || MONTHS.contains(&word)) && next_dateish {
            out[r].kind = TokenKind::Var(VarKind::Timestamp);
        }
    }
    // Empty brackets hold an empty variable, so `()` and `(db.example)` share a
    // skeleton: `from 10.0.0.1 () at` / `from 10.0.0.1 (db.example) at`.
    let mut i = 1;
    while i < out.len() {
        let (o, c) = (out[i - 1], out[i]);
        // Only a free-standing pair: `jk2_init()` is a call, not an empty value.
        if o.kind == TokenKind::Punct
            && c.kind == TokenKind::Punct
            && !c.space_before
            && o.end == c.start
            && (o.space_before || i == 1)
            && matches!(
                (b[o.start as usize], b[c.start as usize]),
                (b'(', b')') | (b'[', b']') | (b'{', b'}') | (b'"', b'"') | (b'\'', b'\'')
            )
        {
            out.insert(
                i,
                Token {
                    start: c.start,
                    end: c.start,
                    kind: TokenKind::Var(VarKind::Any),
                    space_before: false,
                    group_after: false,
                },
            );
            i += 1;
        }
        i += 1;
    }
    // An optional parenthesised value — `(`, one numeric variable, `)` after
    // whitespace — is left out of the skeleton and noted on the token before it: `812 bytes (0.79 KB)
    // sent` and `0 bytes sent` are one event.
    let mut w = 0;
    let mut r = 0;
    while r < out.len() {
        if w > 0
            && r + 2 < out.len()
            && out[r].kind == TokenKind::Punct
            && out[r].space_before
            && b[out[r].start as usize] == b'('
            && matches!(out[r + 1].kind, TokenKind::Var(_))
            && b.get(out[r + 1].start as usize)
                .is_some_and(u8::is_ascii_digit)
            && out[r + 1].end > out[r + 1].start
            && out[r + 2].kind == TokenKind::Punct
            && b[out[r + 2].start as usize] == b')'
            && out.get(r + 3).is_none_or(|t| t.space_before)
        {
            out[w - 1].group_after = true;
            r += 3;
            continue;
        }
        out[w] = out[r];
        w += 1;
        r += 1;
    }
    out.truncate(w);
    // A run of variables separated only by whitespace is one variable (a list whose
    // length varies: `delete blk_1 blk_2 blk_3`, `Fri Jul 1 12:00:00 2005`).
    let mut w = 0;
    for r in 0..out.len() {
        let t = out[r];
        if w > 0
            && t.space_before
            && let (TokenKind::Var(a), TokenKind::Var(k)) = (out[w - 1].kind, t.kind)
        {
            out[w - 1].end = t.end;
            // A group left out after the earlier variable now lies inside the range;
            // one after the later variable still follows the joined one.
            out[w - 1].group_after = t.group_after;
            if a != k {
                out[w - 1].kind = TokenKind::Var(VarKind::Any);
            }
            continue;
        }
        out[w] = t;
        w += 1;
    }
    out.truncate(w);
}

/// How far a quoted `key="..."` value is searched for its closing quote (bounds the work
/// on lines full of unmatched quotes).
const MAX_QUOTED: usize = 1024;

const C_ALPHA: u8 = 1;
const C_DIGIT: u8 = 2;
const C_OTHER: u8 = 4;

/// Byte classes for the fast paths: letters, `_` and `-` are [`C_ALPHA`], ASCII digits
/// [`C_DIGIT`], everything else (punctuation, dots, slashes, non-ASCII) [`C_OTHER`].
static CLASS: [u8; 256] = {
    let mut t = [C_OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if c.is_ascii_alphabetic() || c == b'_' || c == b'-' {
            t[i] = C_ALPHA;
        } else if c.is_ascii_digit() {
            t[i] = C_DIGIT;
        }
        i += 1;
    }
    t
};

fn push(out: &mut Vec<Token>, start: usize, end: usize, kind: TokenKind, space: bool) {
    out.push(Token {
        start: start as u32,
        end: end as u32,
        kind,
        space_before: space,
        group_after: false,
    });
}

/// Tokenises the word `b[s..e]`; returns where scanning resumes (past `e` when a quoted
/// `key="..."` value spans whitespace).
fn word(
    b: &[u8],
    mut s: usize,
    e: usize,
    n: usize,
    mut space: bool,
    out: &mut Vec<Token>,
) -> usize {
    // Fast paths: plain words (letters, `_`, `-`) and plain numbers, most tokens.
    let mut class = 0u8;
    for &c in &b[s..e] {
        class |= CLASS[c as usize];
    }
    if class & !(C_ALPHA) == 0 {
        let kind = if e - s <= 5 && is_bool(&b[s..e]) {
            TokenKind::Var(VarKind::Bool)
        } else {
            TokenKind::Word
        };
        push(out, s, e, kind, space);
        return e;
    }
    if class == C_DIGIT {
        push(out, s, e, TokenKind::Var(VarKind::Number), space);
        return e;
    }
    // `[v6addr]:port` before brackets are split off.
    if b[s] == b'[' {
        let mut x = e;
        while x > s + 1 && matches!(b[x - 1], b',' | b';' | b'.') {
            x -= 1;
        }
        if b[s..x].contains(&b':') && is_ipv6(&b[s..x]) {
            push(out, s, x, TokenKind::Var(VarKind::Ipv6), space);
            for t in x..e {
                push(out, t, t + 1, TokenKind::Punct, false);
            }
            return e;
        }
    }
    // Leading openers as punctuation.
    while s < e && is_opener(b[s]) && e - s > 1 {
        push(out, s, s + 1, TokenKind::Punct, space);
        space = false;
        s += 1;
    }
    // Runs of two or more dots are filler (`instruction......0x1f`): split there.
    if let Some(q) = dot_run(&b[s..e]) {
        let (q0, q1) = (s + q.0, s + q.1);
        let mut resume = q0;
        if q0 > s {
            resume = word(b, s, q0, n, space, out);
            space = false;
        }
        if resume > q0 {
            return resume.max(e);
        }
        push(out, q0, q1, TokenKind::Punct, space);
        if q1 < e {
            return word(b, q1, e, n, false, out);
        }
        return e;
    }
    let mut core_end = e;
    while core_end > s + 1 && is_trailer(b[core_end - 1]) {
        // Keep a closer whose opener is inside the word: `LOCAL(0)`, `f(x)`.
        let opener = match b[core_end - 1] {
            b')' => Some(b'('),
            b']' => Some(b'['),
            b'}' => Some(b'{'),
            b'>' => Some(b'<'),
            _ => None,
        };
        if opener.is_some_and(|o| b[s..core_end - 1].contains(&o)) {
            break;
        }
        core_end -= 1;
    }
    let core = &b[s..core_end];
    if is_known_constant(core) {
        push(out, s, core_end, TokenKind::Word, space);
        space = false;
    } else if let Some(kind) = classify_word(core) {
        push(out, s, core_end, TokenKind::Var(kind), space);
        space = false;
    } else if let Some(kind) = digit_word(core) {
        // A word with a digit and no `key=value` structure is one variable, except for a
        // leading `identifier:` which stays constant (`onExtend:1514038530000`,
        // `ib_sm_sweep.c:1234`); a prefix with two dots is a host: `proxy.example.org:5070`
        // is one variable.
        let p = core.iter().position(|&c| is_split(c)).unwrap_or(core.len());
        if p > 0
            && p + 1 < core.len()
            && core[p] == b':'
            && !core[..p].iter().any(u8::is_ascii_digit)
            && core[..p].iter().filter(|&&c| c == b'.').count() < 2
            && !is_host_port(core, p)
        {
            push(out, s, s + p, TokenKind::Word, space);
            push(out, s + p, s + p + 1, TokenKind::Punct, false);
            let rest = &core[p + 1..];
            let k = classify_word(rest).or_else(|| digit_word(rest));
            match k {
                Some(k) => push(out, s + p + 1, core_end, TokenKind::Var(k), false),
                None => {
                    split(b, s + p + 1, core_end, n, false, out);
                }
            }
        } else if p > 0
            && p < core.len()
            && core[p] == b'('
            && core.last() == Some(&b')')
            && is_call_name(&core[..p])
        {
            // A call `jk2_init()`, `sha3_hash(x)`: the function name is a constant even
            // with a digit in it; the arguments are tokenised on their own.
            push(out, s, s + p, TokenKind::Word, space);
            split(b, s + p, core_end, n, false, out);
        } else if p > 0
            && p < core.len()
            && !core[..p].iter().any(u8::is_ascii_digit)
            && ((core[p] == b'[' && core.last() == Some(&b']'))
                || (core[p] == b'(' && is_code_location(&core[p..])))
        {
            // `identifier[...]` and stack frames `method(File.java:88)`: the identifier
            // is a constant and the bracketed part is tokenised on its own
            // (`stable[12]`), instead of one variable for the whole word. Other
            // `identifier(...)` words (`LOCAL(0)`) stay one variable.
            split(b, s, core_end, n, space, out);
        } else {
            push(out, s, core_end, TokenKind::Var(kind), space);
        }
        space = false;
    } else {
        let consumed = split(b, s, core_end, n, space, out);
        if consumed > core_end {
            return consumed.max(e);
        }
        space = false;
    }
    for t in core_end..e {
        push(out, t, t + 1, TokenKind::Punct, space);
        space = false;
    }
    e
}

/// Splits a word core at punctuation. Returns the resume offset (> `e` only when a quoted
/// value was consumed across whitespace; trailing punctuation is then handled here).
fn split(b: &[u8], s: usize, e: usize, n: usize, mut space: bool, out: &mut Vec<Token>) -> usize {
    let first_new = out.len();
    let mut i = s;
    while i < e {
        let c = b[i];
        if is_split(c) {
            push(out, i, i + 1, TokenKind::Punct, space);
            space = false;
            i += 1;
            // `key=` with nothing after it: an empty value, still a variable position.
            if c == b'=' && i == e && i > s + 1 && !is_split(b[i - 2]) {
                push(out, i, i, TokenKind::Var(VarKind::KeyValue), false);
                continue;
            }
            // key=value: the value runs to the next `,` `;` `&` or the end of the word.
            if c == b'=' && i < e && i > s + 1 && !is_split(b[i - 2]) {
                if b[i] == b'"' || b[i] == b'\'' {
                    let q = b[i];
                    // Quoted value: up to the closing quote, possibly past whitespace.
                    if let Some(off) = b[i + 1..n.min(i + 1 + MAX_QUOTED)]
                        .iter()
                        .position(|&x| x == q)
                    {
                        let close = i + 1 + off;
                        // The quotes belong to the value: logfmt quotes only the values
                        // that need it (`user=alice` / `user="bob smith"`), so both
                        // shapes must share a skeleton.
                        push(out, i, close + 1, TokenKind::Var(VarKind::KeyValue), false);
                        if close >= e {
                            // The quote closed past this word core: finish the word it
                            // closed in, then resume after it.
                            let mut we = close + 1;
                            while we < n && !is_ws(b[we]) {
                                we += 1;
                            }
                            let mut resume = we;
                            if we > close + 1 {
                                resume = split(b, close + 1, we, n, false, out).max(we);
                            }
                            collapse(b, out, first_new);
                            return resume;
                        }
                        i = close + 1;
                        continue;
                    }
                }
                let mut v = i;
                while v < e && !matches!(b[v], b',' | b';' | b'&' | b'"' | b'\'') {
                    // Stop at a closing bracket that has no opener inside the value.
                    if matches!(b[v], b')' | b']' | b'}' | b'>')
                        && !b[i..v].iter().any(|&x| is_opener(x))
                    {
                        break;
                    }
                    v += 1;
                }
                if v > i {
                    push(out, i, v, TokenKind::Var(VarKind::KeyValue), false);
                    i = v;
                }
            }
            continue;
        }
        let mut j = i;
        while j < e && !is_split(b[j]) {
            j += 1;
        }
        push(out, i, j, sub_kind(&b[i..j]), space);
        space = false;
        i = j;
    }
    // Collapse Var ':' Var runs (no whitespace) into one variable.
    collapse(b, out, first_new);
    e
}

fn collapse(b: &[u8], out: &mut Vec<Token>, from: usize) {
    let mut w = from;
    for r in from..out.len() {
        let t = out[r];
        if matches!(t.kind, TokenKind::Var(_)) && !t.space_before && w >= from + 2 {
            let p = out[w - 1];
            let v = out[w - 2];
            if p.kind == TokenKind::Punct
                && b[p.start as usize] == b':'
                && !p.space_before
                && matches!(v.kind, TokenKind::Var(_))
            {
                out[w - 2].end = t.end;
                out[w - 2].kind = TokenKind::Var(VarKind::Alnum);
                w -= 1;
                continue;
            }
        }
        out[w] = t;
        w += 1;
    }
    out.truncate(w);
}
