//! `.seal/policy.json`: which paths must be sealed, which must never be
//! committed, who new envelopes are wrapped to, and whether `aad` binds the
//! path. Pure: parses text and answers questions; does no I/O.
//!
//! Globs use globset syntax with `/` as a literal separator. As in
//! `.gitattributes`, a pattern with no `/` matches at any depth (`*.env` is
//! read as `**/*.env`).

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::kid::Kid;

pub const PATH: &str = ".seal/policy.json";
pub const SCHEMA: &str = "git-seal.policy/v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub schema: String,
    /// Paths that must be stored sealed.
    #[serde(default)]
    pub sealed: Vec<String>,
    /// Paths that must never be committed at all (e.g. private key files).
    #[serde(default)]
    pub never_commit: Vec<String>,
    /// Recipients per path scope; the first scope whose globs match wins.
    /// Paths outside every scope go to the active KEK.
    #[serde(default)]
    pub recipients: Vec<Scope>,
    /// Bind the path into each envelope's `aad`, so an envelope moved to
    /// another path no longer opens there.
    #[serde(default)]
    pub bind_path_aad: bool,
    /// Days after its creation that an active KEK is due for rotation
    /// (absent: [`DEFAULT_ROTATE_AFTER_DAYS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_after_days: Option<u32>,
}

/// Rotation cadence for long-term KEKs when the policy names none: two
/// years, after NIST SP 800-57's guidance.
pub const DEFAULT_ROTATE_AFTER_DAYS: u32 = 730;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    pub paths: Vec<String>,
    pub kids: Vec<Kid>,
}

impl Default for PolicyFile {
    fn default() -> Self {
        PolicyFile {
            schema: SCHEMA.to_owned(),
            sealed: Vec::new(),
            never_commit: Vec::new(),
            recipients: Vec::new(),
            bind_path_aad: false,
            rotate_after_days: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("{PATH}:{line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("{PATH}:{line}: unknown schema {schema:?} (expected {SCHEMA:?})")]
    Schema { line: usize, schema: String },
    #[error("{PATH}:{line}: bad glob {glob:?}: {message}")]
    Glob {
        line: usize,
        glob: String,
        message: String,
    },
    #[error(
        "{PATH}:{line}: recipient {kid} is not a KEK listed in .seal/keys/ (or it is removed)"
    )]
    UnknownKid { line: usize, kid: Kid },
}

/// A loaded, compiled policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub file: PolicyFile,
    sealed: GlobSet,
    never: GlobSet,
    scopes: Vec<(GlobSet, Vec<Kid>)>,
}

fn line_of(text: &str, needle: &str) -> usize {
    let quoted = serde_json::to_string(needle).unwrap_or_default();
    text.find(&quoted)
        .map(|at| text[..at].lines().count().max(1))
        .unwrap_or(1)
}

fn compile(text: &str, globs: &[String]) -> Result<GlobSet, PolicyError> {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        set.add(glob_for(glob).map_err(|e| PolicyError::Glob {
            line: line_of(text, glob),
            glob: glob.clone(),
            message: e.kind().to_string(),
        })?);
    }
    set.build().map_err(|e| PolicyError::Glob {
        line: 1,
        glob: String::new(),
        message: e.to_string(),
    })
}

/// Built-in never-commit glob: a git-seal key file copied into a work tree.
const KEY_FILE_GLOB: &str = "k_????????????????.key";

fn builtin_never() -> &'static GlobSet {
    static SET: std::sync::OnceLock<GlobSet> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let mut set = GlobSetBuilder::new();
        set.add(glob_for(KEY_FILE_GLOB).expect("built-in glob"));
        set.build().expect("built-in glob")
    })
}

/// git-seal's own files, which are never sealed whatever a glob says (the
/// guard lines of `.gitattributes` say the same to Git, and clean passes
/// them through should a later line give them the filter anyway).
pub fn is_exempt(path: &str) -> bool {
    path == ".gitattributes" || path.starts_with(".seal/")
}

/// Must `path` be stored sealed? The one answer, which status, the hooks,
/// `check`, the audit chain and the commands all ask: a `sealed` glob of
/// `policy` matches it, or `.gitattributes` gives it `filter=seal`, and it is
/// not one of git-seal's own files ([`is_exempt`]).
///
/// `filter_seal` says whether `.gitattributes` gives a path `filter=seal`:
/// the caller knows where attributes come from (Git's own lookup in a work
/// tree, the root `.gitattributes` of a stored tree). It is asked only when
/// the answer still depends on it.
pub fn must_seal<E>(
    policy: &Policy,
    path: &str,
    filter_seal: impl FnOnce(&str) -> Result<bool, E>,
) -> Result<bool, E> {
    if is_exempt(path) {
        return Ok(false);
    }
    Ok(policy.sealed_glob_matches(path) || filter_seal(path)?)
}

/// The `filter=seal` rules of a tree's `.gitattributes` files, evaluated
/// as Git does: a pattern may be C-quoted (`"dir with space/**"`); a
/// `[attr]NAME …` line defines a macro that later lines set by NAME
/// (`[attr]sealed filter=seal diff=seal`, then `secrets/** sealed`);
/// negative patterns are ignored; and of the lines that set or unset
/// `filter` for a path, the last wins, a file deeper in the tree winning
/// over the ones above it. Files are added root first ([`SealAttributes::add`]).
#[derive(Clone, Debug, Default)]
pub struct SealAttributes {
    rules: Vec<AttributeRule>,
    /// Macros defined so far (Git reads them from the root file only).
    macros: std::collections::HashMap<String, Vec<String>>,
    /// Patterns of the root file that set `filter=seal`, in file order.
    pub patterns: Vec<String>,
}

/// One line of a `.gitattributes` file that sets or unsets `filter`.
#[derive(Clone, Debug)]
struct AttributeRule {
    matcher: globset::GlobMatcher,
    /// The matcher's regular expression, for [`SealAttributes::narrowed_from`].
    regex: String,
    /// The directory of its file (`""`: the root) and its pattern there.
    dir: String,
    pattern: String,
    /// `filter=seal` (else the line unsets `filter` or sets another one).
    sealed: bool,
}

impl AttributeRule {
    /// How approvals and findings name a sealing line: `attribute:PATTERN`
    /// for the root file, `attribute:DIR/.gitattributes:PATTERN` for a
    /// nested one.
    fn file(&self) -> String {
        if self.dir.is_empty() {
            ".gitattributes".to_owned()
        } else {
            format!("{}/.gitattributes", self.dir)
        }
    }

    fn item(&self) -> String {
        if self.dir.is_empty() {
            format!("attribute:{}", self.pattern)
        } else {
            format!("attribute:{}/.gitattributes:{}", self.dir, self.pattern)
        }
    }
}

/// A sealing `.gitattributes` line that a newer set of files no longer
/// seals everything of ([`SealAttributes::narrowed_from`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Narrowed {
    /// The line as an approval item (`attribute:PATTERN`, or
    /// `attribute:DIR/.gitattributes:PATTERN` for a nested file).
    pub item: String,
    /// A path it sealed that is no longer sealed; `None` when the rules
    /// were too involved to tell, and every sealing line of the old files
    /// is taken as narrowed (a trusted signer approves, or the new lines
    /// are made simpler).
    pub example: Option<String>,
    /// The `.gitattributes` file that now decides that path (the one the
    /// line was in, when no line decides it any more).
    pub file: String,
}

/// How deep macros may nest before a definition is taken as a loop.
const MACRO_DEPTH: usize = 8;

impl SealAttributes {
    /// The root `.gitattributes` alone.
    pub fn parse(text: &str) -> SealAttributes {
        let mut attrs = SealAttributes::default();
        attrs.add("", text);
        attrs
    }

    /// Add the `.gitattributes` file of directory `dir` (`""` for the
    /// root; parents before children).
    pub fn add(&mut self, dir: &str, text: &str) {
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((pattern, rest)) = split_pattern(line) else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            if let Some(name) = pattern.strip_prefix("[attr]") {
                // Git honours macro definitions in the root file only.
                if dir.is_empty() {
                    self.macros.insert(
                        name.to_owned(),
                        words.iter().map(|w| w.to_string()).collect(),
                    );
                }
                continue;
            }
            if pattern.starts_with('!') || pattern.ends_with('/') {
                continue;
            }
            let Some(sealed) = self.filter_setting(&words, 0) else {
                continue;
            };
            if let Ok(glob) = glob_in(dir, &pattern) {
                if sealed && dir.is_empty() {
                    self.patterns.push(pattern.clone());
                }
                self.rules.push(AttributeRule {
                    matcher: glob.compile_matcher(),
                    regex: glob.regex().to_owned(),
                    dir: dir.to_owned(),
                    pattern,
                    sealed,
                });
            }
        }
    }

    /// What `words` (of one line) do to `filter`: set it to seal
    /// (`Some(true)`), set or unset it otherwise (`Some(false)`), or leave
    /// it alone (`None`). Macros expand to their definitions.
    fn filter_setting(&self, words: &[&str], depth: usize) -> Option<bool> {
        let mut sealed = None;
        for word in words {
            match *word {
                "filter=seal" => sealed = Some(true),
                "-filter" | "!filter" | "filter" => sealed = Some(false),
                w if w.starts_with("filter=") => sealed = Some(false),
                w => {
                    if let (Some(def), true) = (self.macros.get(w), depth < MACRO_DEPTH) {
                        let def: Vec<&str> = def.iter().map(String::as_str).collect();
                        if let Some(set) = self.filter_setting(&def, depth + 1) {
                            sealed = Some(set);
                        }
                    }
                }
            }
        }
        sealed
    }

    /// Do these files give `path` the `filter=seal` attribute?
    pub fn seals(&self, path: &str) -> bool {
        self.rules
            .iter()
            .rev()
            .find(|rule| rule.matcher.is_match(path))
            .is_some_and(|rule| rule.sealed)
    }

    /// Do both give every path the same `filter` lines, in the same order
    /// (so they seal the same paths)?
    pub fn same_rules(&self, other: &SealAttributes) -> bool {
        self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| (&a.dir, &a.pattern, a.sealed) == (&b.dir, &b.pattern, b.sealed))
    }

    /// The sealing lines of `before` that these files no longer seal
    /// everything of: for each, a path (the shortest found) that `before`
    /// seals by that line and that neither these files nor one of
    /// `sealed_globs` (the policy's, which still seal) seal, git-seal's
    /// own files aside ([`is_exempt`]). This is about every path there
    /// could be, not only the ones a tree has, so a line that narrows a
    /// pattern (`vault/v1* -filter` after `vault/** filter=seal`, a
    /// nested `* -filter`, a macro that unsets `filter`) is found before a
    /// file under it exists.
    ///
    /// Every pattern is a regular language over path bytes; one automaton
    /// runs them all at once, and a walk of its states finds, for each
    /// state, which patterns a path ending there matches.
    pub fn narrowed_from(&self, before: &SealAttributes, sealed_globs: &[String]) -> Vec<Narrowed> {
        if self.same_rules(before) || !before.rules.iter().any(|r| r.sealed) {
            return Vec::new();
        }
        let everything = || {
            let mut found: Vec<Narrowed> = Vec::new();
            for rule in before.rules.iter().filter(|r| r.sealed) {
                if !found.iter().any(|n| n.item == rule.item()) {
                    found.push(Narrowed {
                        item: rule.item(),
                        example: None,
                        file: rule.file(),
                    });
                }
            }
            found
        };
        let globs: Vec<String> = sealed_globs
            .iter()
            .filter_map(|g| Some(glob_for(g).ok()?.regex().to_owned()))
            .collect();
        let regexes: Vec<&str> = before
            .rules
            .iter()
            .chain(&self.rules)
            .map(|r| r.regex.as_str())
            .chain(globs.iter().map(String::as_str))
            .chain([EXEMPT, VALID_PATH])
            .collect();
        let bounds = Bounds {
            before: before.rules.len(),
            now: before.rules.len() + self.rules.len(),
        };
        let sealed = |at: usize| {
            if at < bounds.before {
                before.rules[at].sealed
            } else {
                self.rules[at - bounds.before].sealed
            }
        };
        match lost_paths(&regexes, &bounds, sealed) {
            Some(lost) => {
                let mut found: Vec<Narrowed> = Vec::new();
                for (rule, decides, path) in lost {
                    let item = before.rules[rule].item();
                    if !found.iter().any(|n| n.item == item) {
                        let file = match decides {
                            Some(at) => self.rules[at - bounds.before].file(),
                            None => before.rules[rule].file(),
                        };
                        found.push(Narrowed {
                            item,
                            example: Some(path),
                            file,
                        });
                    }
                }
                found
            }
            None => everything(),
        }
    }
}

/// [`is_exempt`] as a regular expression.
const EXEMPT: &str = r"(?-u)^(?:\.gitattributes|\.seal/(?s:.)*)$";

/// A path Git can store: names that are not empty, `.` or `..`, joined by
/// single slashes (so a pattern's odd corner, such as `vault/**/*`
/// matching `vault/`, is no path to report).
const VALID_PATH: &str =
    r"(?-u)^(?:[^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)(?:/(?:[^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+))*$";

/// Where each group of patterns ends in the list given to [`lost_paths`]:
/// `before`'s lines up to `before`, then the new lines up to `now`, then
/// what seals or exempts whatever the lines say (the policy's globs,
/// git-seal's own files), then last [`VALID_PATH`].
struct Bounds {
    before: usize,
    now: usize,
}

/// States the walk of [`lost_paths`] may visit before it gives up.
const MAX_STATES: usize = 20_000;

/// For each line of `before` that seals some path the new lines do not
/// (nor a policy glob): that line's index, the index of the new line that
/// decides the path (if one does) and the shortest such path found.
/// `None` when the automaton grew too large to tell.
fn lost_paths(
    regexes: &[&str],
    bounds: &Bounds,
    sealed: impl Fn(usize) -> bool,
) -> Option<Vec<(usize, Option<usize>, String)>> {
    use regex_automata::hybrid::dfa::DFA;
    use regex_automata::hybrid::LazyStateID;
    use regex_automata::util::{start, syntax};
    use regex_automata::{Anchored, MatchKind};
    use std::collections::{HashMap, VecDeque};

    let dfa = DFA::builder()
        .configure(
            DFA::config()
                .match_kind(MatchKind::All)
                .cache_capacity(16 << 20),
        )
        .syntax(syntax::Config::new().utf8(false).dot_matches_new_line(true))
        .thompson(regex_automata::nfa::thompson::Config::new().utf8(false))
        .build_many(regexes)
        .ok()?;
    let mut cache = dfa.create_cache();
    let start = dfa
        .start_state(&mut cache, &start::Config::new().anchored(Anchored::Yes))
        .ok()?;
    // Letters first, so the paths found read like paths.
    let bytes: Vec<u8> = (b'a'..=b'z')
        .chain(b'0'..=b'9')
        .chain(*b"/._-")
        .chain(
            (1..=255u8)
                .filter(|b| !b.is_ascii_lowercase() && !b.is_ascii_digit() && !b"/._-".contains(b)),
        )
        .collect();
    let mut came_from: HashMap<LazyStateID, (LazyStateID, u8)> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    let mut lost: Vec<(usize, Option<usize>, String)> = Vec::new();
    let path_to = |came_from: &HashMap<LazyStateID, (LazyStateID, u8)>, mut at: LazyStateID| {
        let mut path = Vec::new();
        while let Some(&(from, byte)) = came_from.get(&at) {
            path.push(byte);
            at = from;
        }
        path.reverse();
        String::from_utf8_lossy(&path).into_owned()
    };
    let valid = regexes.len() - 1;
    while let Some(state) = queue.pop_front() {
        let end = dfa.next_eoi_state(&mut cache, state).ok()?;
        if end.is_match() {
            let (mut was, mut now, mut kept, mut path) = (None, None, false, false);
            for i in 0..dfa.match_len(&cache, end) {
                let at = dfa.match_pattern(&cache, end, i).as_usize();
                if at < bounds.before {
                    was = was.max(Some(at));
                } else if at < bounds.now {
                    now = now.max(Some(at));
                } else if at < valid {
                    kept = true; // a policy glob still seals it, or it is exempt
                } else {
                    path = true;
                }
            }
            if let Some(rule) = was.filter(|&r| path && sealed(r)) {
                if !kept && !now.is_some_and(&sealed) && !lost.iter().any(|(r, ..)| *r == rule) {
                    lost.push((rule, now, path_to(&came_from, state)));
                }
            }
        }
        for &byte in &bytes {
            let next = dfa.next_state(&mut cache, state, byte).ok()?;
            if next.is_dead() || next == start || came_from.contains_key(&next) {
                continue;
            }
            if next.is_quit() || came_from.len() >= MAX_STATES {
                return None;
            }
            came_from.insert(next, (state, byte));
            queue.push_back(next);
        }
        // A cleared cache renames its states: what was walked means nothing.
        if cache.clear_count() > 0 {
            return None;
        }
    }
    Some(lost)
}

/// A line's pattern (unquoted) and the rest of the line. A pattern in
/// double quotes is C-quoted, as Git writes one with spaces or special
/// characters.
fn split_pattern(line: &str) -> Option<(String, &str)> {
    if let Some(quoted) = line.strip_prefix('"') {
        let mut pattern = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((pattern, &quoted[i + 1..])),
                '\\' => {
                    let (_, e) = chars.next()?;
                    match e {
                        'n' => pattern.push('\n'),
                        't' => pattern.push('\t'),
                        '0'..='7' => {
                            // Three octal digits: one byte of a UTF-8 name.
                            let (_, b) = chars.next()?;
                            let (_, c) = chars.next()?;
                            let byte = u8::from_str_radix(&format!("{e}{b}{c}"), 8).ok()?;
                            pattern.push(char::from(byte));
                        }
                        other => pattern.push(other),
                    }
                }
                c => pattern.push(c),
            }
        }
        return None;
    }
    let end = line.find(char::is_whitespace).unwrap_or(line.len());
    Some((line[..end].to_owned(), &line[end..]))
}

/// A `.gitattributes` pattern of directory `dir` as a glob over
/// repository paths: anchored to `dir` when it has a slash, else matching
/// a name at any depth below `dir`.
fn glob_in(dir: &str, pattern: &str) -> Result<Glob, globset::Error> {
    let glob = glob_for(pattern)?;
    if dir.is_empty() {
        return Ok(glob);
    }
    GlobBuilder::new(&format!("{}/{}", globset::escape(dir), glob.glob()))
        .literal_separator(true)
        .build()
}

/// What a user means by a pattern given to `init`, in the form that
/// `.gitattributes` and the policy match: a directory means everything
/// under it (`secrets/`, `secrets/**/`, and `secrets` when `is_dir` says it
/// is one, become `secrets/**`), and a leading `./` means the top.
pub fn normalize_pattern(pattern: &str, is_dir: impl Fn(&str) -> bool) -> String {
    let mut p = pattern;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let p = p.trim_end_matches('/');
    let is_glob = p.contains(['*', '?', '[']);
    if pattern.ends_with('/') && !p.ends_with("**") || !is_glob && !p.is_empty() && is_dir(p) {
        format!("{p}/**")
    } else {
        p.to_owned()
    }
}

/// Does `.gitattributes` pattern `pattern` match `path` (as [`SealAttributes`]
/// matches)?
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    pattern_matcher(pattern).is_ok_and(|m| m.is_match(path))
}

/// A pattern as [`pattern_matches`] reads it, compiled once to match many
/// paths; the error says what is wrong with the pattern.
pub fn pattern_matcher(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    Ok(glob_for(pattern)?.compile_matcher())
}

fn glob_for(pattern: &str) -> Result<Glob, globset::Error> {
    let trimmed = pattern.strip_prefix('/').unwrap_or(pattern);
    let anchored = pattern.starts_with('/') || trimmed.contains('/');
    let full = if anchored {
        trimmed.to_owned()
    } else {
        format!("**/{trimmed}")
    };
    GlobBuilder::new(&full).literal_separator(true).build()
}

impl Policy {
    /// Parse policy text. `known` lists the kids in `.seal/keys/` that are not
    /// removed; a recipient outside it is an error naming its line.
    pub fn parse(text: &str, known: &[Kid]) -> Result<Policy, PolicyError> {
        let file: PolicyFile = serde_json::from_str(text).map_err(|e| PolicyError::Syntax {
            line: e.line(),
            message: e.to_string(),
        })?;
        Policy::from_file(file, text, known)
    }

    pub fn from_file(file: PolicyFile, text: &str, known: &[Kid]) -> Result<Policy, PolicyError> {
        if file.schema != SCHEMA {
            return Err(PolicyError::Schema {
                line: line_of(text, &file.schema),
                schema: file.schema,
            });
        }
        let sealed = compile(text, &file.sealed)?;
        let never = compile(text, &file.never_commit)?;
        let mut scopes = Vec::new();
        for scope in &file.recipients {
            if let Some(kid) = scope.kids.iter().find(|k| !known.contains(k)) {
                return Err(PolicyError::UnknownKid {
                    line: line_of(text, kid.as_str()),
                    kid: kid.clone(),
                });
            }
            scopes.push((compile(text, &scope.paths)?, scope.kids.clone()));
        }
        Ok(Policy {
            file,
            sealed,
            never,
            scopes,
        })
    }

    pub fn empty() -> Policy {
        Policy::from_file(PolicyFile::default(), "", &[]).expect("the default policy is valid")
    }

    /// Does one of the `sealed` globs match `path`? Only half of whether it
    /// must be sealed: ask [`must_seal`].
    fn sealed_glob_matches(&self, path: &str) -> bool {
        self.sealed.is_match(path)
    }

    /// Must `path` never be committed? Key files named like git-seal's
    /// (`k_<16 hex>.key`) never may, whatever the policy says.
    pub fn never_commit(&self, path: &str) -> bool {
        self.never_commit_glob(path).is_some()
    }

    /// The never-commit glob that matches `path` (the built-in key-file
    /// glob included), for messages.
    pub fn never_commit_glob(&self, path: &str) -> Option<&str> {
        if let Some(&at) = self.never.matches(path).first() {
            return Some(&self.file.never_commit[at]);
        }
        builtin_never().is_match(path).then_some(KEY_FILE_GLOB)
    }

    /// Recipients for `path`, or `None` for the default (the active KEK).
    pub fn recipients_for(&self, path: &str) -> Option<&[Kid]> {
        self.scopes
            .iter()
            .find(|(set, _)| set.is_match(path))
            .map(|(_, kids)| kids.as_slice())
    }

    /// Days after its creation that an active KEK is due for rotation.
    pub fn rotate_after_days(&self) -> u32 {
        self.file
            .rotate_after_days
            .unwrap_or(DEFAULT_ROTATE_AFTER_DAYS)
    }

    /// The `aad` new envelopes for `path` carry.
    pub fn aad_for(&self, path: &str) -> Option<String> {
        self.file.bind_path_aad.then(|| format!("path:{path}"))
    }

    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.file).expect("policy serializes");
        text.push('\n');
        text
    }

    /// The `never_commit` globs `init` writes into a new policy: private key
    /// files that are committed by mistake. A file under a sealed path that
    /// matches one is still fine as an envelope (sealing a TLS key is what
    /// git-seal is for); plaintext is refused.
    pub const DEFAULT_NEVER_COMMIT: &'static [&'static str] = &[
        "*.pem",
        "*.key",
        "*.p12",
        "*.pfx",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
    ];

    /// A new policy as `init` writes it: [`Policy::DEFAULT_NEVER_COMMIT`].
    pub fn new_default() -> Policy {
        let file = PolicyFile {
            never_commit: Policy::DEFAULT_NEVER_COMMIT
                .iter()
                .map(|g| g.to_string())
                .collect(),
            ..PolicyFile::default()
        };
        Policy::from_file(file, "", &[]).expect("the default globs are valid")
    }

    /// Add a required-sealed glob (no-op if already there).
    pub fn add_sealed(&mut self, glob: &str) -> Result<bool, PolicyError> {
        if self.file.sealed.iter().any(|g| g == glob) {
            return Ok(false);
        }
        let mut file = self.file.clone();
        file.sealed.push(glob.to_owned());
        let known: Vec<Kid> = self.scopes.iter().flat_map(|(_, k)| k.clone()).collect();
        *self = Policy::from_file(file, "", &known)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_follow_gitattributes_depth_rules() {
        let text =
            r#"{"schema": "git-seal.policy/v1", "sealed": ["secrets/**", "*.env", "/top.txt"]}"#;
        let p = Policy::parse(text, &[]).unwrap();
        assert!(p.sealed_glob_matches("secrets/a"));
        assert!(p.sealed_glob_matches("secrets/a/b.json"));
        assert!(!p.sealed_glob_matches("other/secrets/a"));
        assert!(p.sealed_glob_matches("prod.env") && p.sealed_glob_matches("deep/dir/prod.env"));
        assert!(p.sealed_glob_matches("top.txt") && !p.sealed_glob_matches("x/top.txt"));
    }

    #[test]
    fn must_seal_is_glob_or_attribute_but_never_an_exempt_path() {
        let text = r#"{"schema": "git-seal.policy/v1", "sealed": ["*.json", "secrets/**"]}"#;
        let p = Policy::parse(text, &[]).unwrap();
        let attrs = SealAttributes::parse("** filter=seal\n");
        let ask = |path| must_seal(&p, path, |path| Ok::<_, ()>(attrs.seals(path)));
        assert_eq!(ask("config/app.json"), Ok(true));
        assert_eq!(ask("README"), Ok(true), "by the attribute alone");
        for own in [
            ".seal/policy.json",
            ".seal/keys/k_0000000000000001.json",
            ".gitattributes",
        ] {
            assert_eq!(ask(own), Ok(false), "{own}");
        }
        // The attribute lookup (Git I/O for some callers) runs only when the
        // answer depends on it, and its error is the caller's.
        let unasked = |_: &str| -> Result<bool, ()> { panic!("asked") };
        assert_eq!(must_seal(&p, "secrets/a", unasked), Ok(true));
        assert_eq!(must_seal(&p, ".seal/policy.json", unasked), Ok(false));
        assert_eq!(
            must_seal(&p, "README", |_| Err("no attributes")),
            Err("no attributes")
        );
        assert_eq!(must_seal(&p, "README", |_| Ok::<_, ()>(false)), Ok(false));
    }

    #[test]
    fn patterns_mean_what_users_mean() {
        let dir = |p: &str| p == "secrets" || p == "config/prod";
        for (given, meant) in [
            ("secrets/", "secrets/**"),
            ("secrets", "secrets/**"),
            ("./secrets/**", "secrets/**"),
            ("secrets/**/", "secrets/**"),
            ("./config/prod", "config/prod/**"),
            ("*.env", "*.env"),
            ("secrets/**", "secrets/**"),
            ("notadir", "notadir"),
        ] {
            assert_eq!(normalize_pattern(given, dir), meant, "{given}");
        }
        assert!(pattern_matches("secrets/**", "secrets/a/b.env"));
        assert!(pattern_matches("*.env", "deep/x.env"));
        assert!(!pattern_matches("secrets/", "secrets/a"));
    }

    #[test]
    fn errors_name_the_line() {
        let text =
            "{\n  \"schema\": \"git-seal.policy/v1\",\n  \"sealed\": [\n    \"a[\"\n  ]\n}\n";
        let err = Policy::parse(text, &[]).unwrap_err();
        assert!(matches!(err, PolicyError::Glob { line: 4, .. }), "{err:?}");
        let text = "{\n  \"schema\": \"git-seal.policy/v1\",\n  \"recipients\": [{\"paths\": [\"**\"],\n \"kids\": [\"k_0000000000000000\"]}]\n}";
        let err = Policy::parse(text, &[]).unwrap_err();
        assert!(
            matches!(err, PolicyError::UnknownKid { line: 4, .. }),
            "{err:?}"
        );
        assert!(Policy::parse("{\"schema\": \"x\"}", &[]).is_err());
        assert!(matches!(
            Policy::parse("{\n\"schema\": \"git-seal.policy/v1\",\n\"bogus\": 1}", &[]),
            Err(PolicyError::Syntax { line: 3, .. })
        ));
    }

    #[test]
    fn never_commit_names_its_glob_and_knows_key_files() {
        let text = r#"{"schema": "git-seal.policy/v1", "never_commit": ["*.pem"]}"#;
        let p = Policy::parse(text, &[]).unwrap();
        assert_eq!(p.never_commit_glob("certs/site.pem"), Some("*.pem"));
        assert_eq!(
            p.never_commit_glob("backup/k_0123456789abcdef.key"),
            Some(KEY_FILE_GLOB)
        );
        assert!(!p.never_commit("k_short.key") && !p.never_commit("README"));
    }

    #[test]
    fn gitattributes_macros_quoting_and_nested_files() {
        let root = "[attr]sealed filter=seal diff=seal merge=seal\n\
                    [attr]vault sealed\n\
                    secrets/** sealed\n\
                    \"dir with space/**\" filter=seal\n\
                    deep/** vault\n\
                    !negated/** filter=seal\n";
        let mut attrs = SealAttributes::parse(root);
        assert!(attrs.seals("secrets/db.env"));
        assert!(attrs.seals("dir with space/a"));
        assert!(attrs.seals("deep/x/y"));
        assert!(!attrs.seals("negated/a"));
        assert!(!attrs.seals("other/a"));
        assert_eq!(
            attrs.patterns,
            ["secrets/**", "dir with space/**", "deep/**"]
        );
        // A nested file: relative patterns, and it wins over the root.
        attrs.add("secrets/public", "* -filter\n*.env sealed\n");
        attrs.add("config", "*.env filter=seal\n");
        assert!(!attrs.seals("secrets/public/readme.md"));
        assert!(attrs.seals("secrets/public/a.env"));
        assert!(attrs.seals("config/sub/x.env"));
        assert!(!attrs.seals("x.env"));
    }

    #[test]
    fn narrowed_from_finds_any_line_that_unseals_a_path() {
        let base = "vault/** filter=seal diff=seal merge=seal\n/.gitattributes !filter\n/.seal/** !filter\n";
        let parse = |text: &str, nested: &[(&str, &str)]| {
            let mut attrs = SealAttributes::parse(text);
            for (dir, text) in nested {
                attrs.add(dir, text);
            }
            attrs
        };
        let before = parse(base, &[]);
        let narrowed = |now: &SealAttributes, globs: &[&str]| {
            let globs: Vec<String> = globs.iter().map(|g| g.to_string()).collect();
            now.narrowed_from(&before, &globs)
                .into_iter()
                .map(|n| (n.item, n.example, n.file))
                .collect::<Vec<_>>()
        };
        let at = |path: &str, file: &str| {
            vec![(
                "attribute:vault/**".to_owned(),
                Some(path.to_owned()),
                file.to_owned(),
            )]
        };
        let root = ".gitattributes";
        for line in [
            "vault/v1* -filter",
            "vault/v1* !filter",
            "vault/v1* filter=lfs",
        ] {
            let now = parse(&format!("{base}{line}\n"), &[]);
            assert_eq!(narrowed(&now, &[]), at("vault/v1", root), "{line}");
        }
        let now = parse(&format!("[attr]plain -filter\n{base}*.png plain\n"), &[]);
        assert_eq!(narrowed(&now, &[]), at("vault/.png", root));
        let now = parse(base, &[("vault/n", "* -filter\n")]);
        assert_eq!(
            narrowed(&now, &[]),
            at("vault/n/a", "vault/n/.gitattributes")
        );
        // The line gone altogether.
        let now = parse("/.gitattributes !filter\n", &[]);
        assert_eq!(narrowed(&now, &[]), at("vault/a", root));

        // Not narrowed: an override that a later line undoes, one that
        // only touches git-seal's own files or paths the policy seals,
        // more sealing, and the same lines.
        let now = parse(&format!("vault/v1* -filter\n{base}"), &[]);
        assert_eq!(narrowed(&now, &[]), vec![]);
        let now = parse(&format!("{base}/.seal/** -filter\n"), &[]);
        assert_eq!(narrowed(&now, &[]), vec![]);
        let now = parse(&format!("{base}vault/v1* -filter\n"), &[]);
        assert_eq!(narrowed(&now, &["vault/**"]), vec![]);
        let now = parse(
            &format!("{base}*.env filter=seal\n"),
            &[("a", "* filter=seal\n")],
        );
        assert_eq!(narrowed(&now, &[]), vec![]);
        assert_eq!(narrowed(&before, &[]), vec![]);
        // A nested file's own sealing line, dropped, is named by its file.
        let nested = parse(base, &[("docs", "keys/** filter=seal\n")]);
        assert_eq!(
            before
                .narrowed_from(&nested, &[])
                .into_iter()
                .map(|n| (n.item, n.example))
                .collect::<Vec<_>>(),
            vec![(
                "attribute:docs/.gitattributes:keys/**".to_owned(),
                Some("docs/keys/a".to_owned())
            )]
        );
    }

    #[test]
    fn narrowed_from_decides_a_typical_file_with_many_lfs_lines() {
        let mut text = String::from("* text=auto\n*.sh text eol=lf\n");
        for ext in [
            "png", "jpg", "gif", "psd", "zip", "tar.gz", "mp4", "pdf", "bin", "iso", "dll", "so",
            "jar", "wasm", "ttf", "woff2", "sqlite", "parquet", "onnx", "pt",
        ] {
            text.push_str(&format!("*.{ext} filter=lfs diff=lfs merge=lfs -text\n"));
        }
        text.push_str("vault/** filter=seal diff=seal merge=seal\n\"config/prod env/*.yaml\" filter=seal\n/.gitattributes !filter\n/.seal/** !filter\n");
        let before = SealAttributes::parse(&text);
        let now = SealAttributes::parse(&format!(
            "{text}*.webp filter=lfs diff=lfs merge=lfs -text\n"
        ));
        let started = std::time::Instant::now();
        let found = now.narrowed_from(&before, &[]);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // `config/prod env/*.yaml` cannot end in `.webp`: not narrowed.
        let items: Vec<(&str, Option<&str>)> = found
            .iter()
            .map(|n| (n.item.as_str(), n.example.as_deref()))
            .collect();
        assert_eq!(items, vec![("attribute:vault/**", Some("vault/.webp"))]);
        // The same line before the sealing ones narrows nothing.
        let now = SealAttributes::parse(&format!("*.webp filter=lfs\n{text}"));
        assert_eq!(now.narrowed_from(&before, &[]), vec![]);
    }

    #[test]
    fn gitattributes_last_line_wins() {
        let attrs = SealAttributes::parse(
            "# comment\nsecrets/** filter=seal diff=seal merge=seal\n*.env filter=seal\nsecrets/public.txt -filter\n/.seal/** !filter !diff !merge\n*.png binary\n",
        );
        assert!(attrs.seals("secrets/a") && attrs.seals("x/y/prod.env"));
        assert!(!attrs.seals("secrets/public.txt") && !attrs.seals("README"));
        assert!(!attrs.seals(".seal/x.env"));
        assert_eq!(attrs.patterns, vec!["secrets/**", "*.env"]);
        assert!(is_exempt(".seal/policy.json") && is_exempt(".gitattributes"));
    }

    #[test]
    fn scopes_and_aad() {
        let kid = Kid::parse("k_0000000000000001").unwrap();
        let text = r#"{"schema": "git-seal.policy/v1", "recipients": [{"paths": ["prod/**"], "kids": ["k_0000000000000001"]}], "bind_path_aad": true}"#;
        let p = Policy::parse(text, std::slice::from_ref(&kid)).unwrap();
        assert_eq!(p.recipients_for("prod/db.env"), Some(&[kid][..]));
        assert_eq!(p.recipients_for("dev/db.env"), None);
        assert_eq!(p.aad_for("a/b").as_deref(), Some("path:a/b"));
    }
}
