//! A review as text lines (one per path) and as a Markdown table to post
//! as a pull-request comment. Paths, from-paths and the range as given are
//! outside text: each is escaped ([`display_path`]) so that a file name
//! cannot forge a line or a table row. Neither form ever holds plaintext;
//! the plaintext diff is the caller's to print, and only when asked.

use super::{Category, Entry, How, Review, ReviewRange};
use crate::printable;

/// A path as printed: see [`printable::escape_path`].
pub fn display_path(path: &[u8]) -> String {
    printable::escape_path(path)
}

fn short(id: &crate::repo::Oid) -> String {
    id.to_string()[..12].to_owned()
}

/// `BASE..TIP` with short ids (`(empty tree)` for no base).
fn range_ids(range: &ReviewRange) -> String {
    let base = range
        .base
        .as_ref()
        .map_or_else(|| "(empty tree)".to_owned(), short);
    format!("{base}..{}", short(&range.tip))
}

/// How the range was chosen, in words; `quote` shows a name from outside.
fn how(range: &ReviewRange, quote: impl Fn(&str) -> String) -> String {
    match range.how {
        How::Given => quote(range.spec.as_deref().unwrap_or("")),
        How::Upstream => format!(
            "HEAD against its merge base with {}",
            quote(range.upstream.as_deref().unwrap_or(""))
        ),
        How::Parent => "HEAD against its parent, as the branch has no upstream".to_owned(),
        How::Root => "HEAD, a root commit, against the empty tree".to_owned(),
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What a review found, in a few words; `strong` marks findings.
fn summary(review: &Review, strong: impl Fn(String) -> String) -> String {
    if review.paths.is_empty() {
        return "no sealed path changed".to_owned();
    }
    let findings = match review.findings {
        0 => "no findings".to_owned(),
        n => strong(count(n, "finding", "findings")),
    };
    format!(
        "{findings} in {} changed",
        count(review.paths.len(), "sealed path", "sealed paths")
    )
}

/// The facts of an entry besides its category and path, each rendered
/// with `code` for kids, commits and paths.
fn details(entry: &Entry, code: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(lines) = entry.lines {
        out.push(format!("+{} -{}", lines.added, lines.removed));
    }
    if let Some(from) = &entry.from_path_bytes {
        out.push(format!("from {}", code(&display_path(from))));
    }
    if let Some(commit) = &entry.reverted_to {
        out.push(format!("same blob as in {}", code(&short(commit))));
    }
    let kids = |sign: &str, kids: &[crate::kid::Kid]| {
        kids.iter()
            .map(|k| format!("{sign}{}", code(k.as_str())))
            .collect::<Vec<_>>()
    };
    let changed: Vec<String> = kids("+", &entry.kids_added)
        .into_iter()
        .chain(kids("-", &entry.kids_removed))
        .collect();
    if !changed.is_empty() {
        out.push(format!("kids {}", changed.join(" ")));
    } else if entry.category == Category::Sealed && !entry.kids.is_empty() {
        out.push(format!("to {}", kids("", &entry.kids).join(" ")));
    }
    out
}

/// One line for the range, one per path (category, path, details, and a
/// finding's message with its fix), and a summary line.
pub fn text(review: &Review) -> Vec<String> {
    let mut out = vec![format!(
        "review {} ({})",
        range_ids(&review.range),
        how(&review.range, |s| printable::escape(s).into_owned())
    )];
    let plain = |s: &str| s.to_owned();
    for entry in &review.paths {
        let mut line = format!(
            "{:<9} {}",
            entry.category.as_str(),
            display_path(&entry.path_bytes)
        );
        for detail in details(entry, &plain) {
            line.push_str("  ");
            line.push_str(&detail);
        }
        if let Some(message) = &entry.message {
            line.push_str(if entry.finding { "  finding: " } else { "  " });
            line.push_str(message);
        }
        out.push(line);
    }
    out.push(summary(review, |s| s));
    out
}

/// `text` as a Markdown code span that stays inside its table cell: a
/// fence longer than any run of backticks in it, padded where it starts or
/// ends with a backtick or a space, and `|` escaped (as GitHub's and
/// GitLab's tables read it, inside code spans too). `text` must already be
/// free of control characters ([`display_path`]).
fn code_span(text: &str) -> String {
    let text = text.replace('|', "\\|");
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let edge = |c: Option<char>| matches!(c, Some('`' | ' '));
    let pad = if edge(text.chars().next()) || edge(text.chars().last()) {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// A finding's few words for the table (the full message, with its fix,
/// is in the text and JSON output).
fn reason(entry: &Entry) -> Option<&'static str> {
    Some(match entry.category {
        Category::Unsealed if entry.finding => "**finding**: an envelope became plaintext",
        Category::Unsealed => "an envelope became plaintext, as a trusted signer approved",
        Category::Plaintext => "**finding**: plaintext where the policy requires an envelope",
        Category::Malformed => "**finding**: not a valid envelope",
        Category::Reverted => "rollback to an older version",
        Category::Moved => "copied or swapped",
        _ => return None,
    })
}

/// A Markdown comment: a heading with the range, a summary, and a table
/// of path, change and details.
pub fn markdown(review: &Review) -> String {
    let range = &review.range;
    let mut out = format!(
        "#### git seal review of {}\n\nReviewed {}: {}.\n",
        code_span(&range_ids(range)),
        how(range, |s| code_span(&printable::escape_path(s.as_bytes()))),
        summary(review, |s| format!("**{s}**"))
    );
    if review.paths.is_empty() {
        return out;
    }
    out.push_str("\n| path | change | details |\n| --- | --- | --- |\n");
    for entry in &review.paths {
        let mut details = details(entry, &code_span);
        details.extend(reason(entry).map(str::to_owned));
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            code_span(&display_path(&entry.path_bytes)),
            entry.category.as_str(),
            details.join("; ")
        ));
    }
    if review.findings > 0 {
        out.push_str("\n`git seal review` in a clone says how to fix each finding.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_keep_backticks_and_pipes_inside_the_cell() {
        assert_eq!(code_span("a.env"), "`a.env`");
        assert_eq!(code_span("a|b"), "`a\\|b`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`a``"), "``` `a`` ```");
        assert_eq!(code_span(" a "), "`  a  `");
    }
}
