//! Line counts and unified diffs of two plaintexts: `similar`'s Myers diff
//! over lines, each line kept with its line end, so that a final newline
//! added or dropped is a changed line, as in Git. Binary content (a NUL in
//! its first 8,000 bytes, Git's test) gets neither. This module only
//! compares bytes it is given; what may be shown is the caller's call.

use std::ops::Range;
use std::time::{Duration, Instant};

use serde::Serialize;
use similar::{Algorithm, DiffOp, DiffTag};

/// Lines added and removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Lines {
    pub added: usize,
    pub removed: usize,
}

/// Past this, Myers gives up looking for the shortest diff and returns a
/// correct but longer one: a huge rewritten file must not stall a review.
const DEADLINE: Duration = Duration::from_secs(5);

/// Lines of context around each change in a unified diff, as Git shows.
const CONTEXT: usize = 3;

fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8000)].contains(&0)
}

fn split(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|b| *b == b'\n').collect()
}

fn diff(old: &[&[u8]], new: &[&[u8]]) -> Vec<DiffOp> {
    let deadline = Instant::now() + DEADLINE;
    similar::capture_diff_slices_deadline(Algorithm::Myers, old, new, Some(deadline))
}

/// Lines added and removed from `old` to `new`; `None` when either is
/// binary.
pub fn count(old: &[u8], new: &[u8]) -> Option<Lines> {
    if is_binary(old) || is_binary(new) {
        return None;
    }
    let mut lines = Lines::default();
    for op in diff(&split(old), &split(new)) {
        let (tag, removed, added) = op.as_tag_tuple();
        if tag != DiffTag::Equal {
            lines.added += added.len();
            lines.removed += removed.len();
        }
    }
    Some(lines)
}

/// A unified diff of `old` and `new` (`---`/`+++` headers naming them,
/// hunks with three lines of context), or one line saying that binary
/// content differs. Empty when they are equal.
pub fn unified(old: &[u8], new: &[u8], old_name: &str, new_name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if old == new {
        return out;
    }
    if is_binary(old) || is_binary(new) {
        out.extend_from_slice(
            format!("Binary files {old_name} and {new_name} differ\n").as_bytes(),
        );
        return out;
    }
    let (a, b) = (split(old), split(new));
    out.extend_from_slice(format!("--- {old_name}\n+++ {new_name}\n").as_bytes());
    for hunk in similar::group_diff_ops(diff(&a, &b), CONTEXT) {
        let (Some(first), Some(last)) = (hunk.first(), hunk.last()) else {
            continue;
        };
        let olds = first.old_range().start..last.old_range().end;
        let news = first.new_range().start..last.new_range().end;
        out.extend_from_slice(
            format!("@@ -{} +{} @@\n", hunk_range(&olds), hunk_range(&news)).as_bytes(),
        );
        for op in &hunk {
            let (tag, removed, added) = op.as_tag_tuple();
            match tag {
                DiffTag::Equal => push_lines(&mut out, b' ', &a[removed]),
                _ => {
                    push_lines(&mut out, b'-', &a[removed]);
                    push_lines(&mut out, b'+', &b[added]);
                }
            }
        }
    }
    out
}

/// `start,len` as unified diffs count lines: from 1, and an empty range
/// names the line before it.
fn hunk_range(range: &Range<usize>) -> String {
    match range.len() {
        0 => format!("{},0", range.start),
        1 => format!("{}", range.start + 1),
        n => format!("{},{n}", range.start + 1),
    }
}

fn push_lines(out: &mut Vec<u8>, mark: u8, lines: &[&[u8]]) {
    for line in lines {
        out.push(mark);
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.extend_from_slice(b"\n\\ No newline at end of file\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_as_git_numstat_does() {
        assert_eq!(
            count(b"a\nb\nc\n", b"a\nB\nc\nd\n"),
            Some(Lines {
                added: 2,
                removed: 1
            })
        );
        assert_eq!(count(b"", b""), Some(Lines::default()));
        assert_eq!(
            count(b"", b"x\ny\n"),
            Some(Lines {
                added: 2,
                removed: 0
            })
        );
        // A dropped final newline changes the last line.
        assert_eq!(
            count(b"a\nb\n", b"a\nb"),
            Some(Lines {
                added: 1,
                removed: 1
            })
        );
        assert_eq!(count(b"a\0b", b"a"), None);
    }

    #[test]
    fn unified_diff_has_hunks_with_context() {
        let old: String = (1..=10).map(|i| format!("{i}\n")).collect();
        let new = old.replace("5\n", "five\n");
        let text =
            String::from_utf8(unified(old.as_bytes(), new.as_bytes(), "a/f", "b/f")).unwrap();
        assert_eq!(
            text,
            "--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
        let text = String::from_utf8(unified(b"", b"x", "/dev/null", "b/f")).unwrap();
        assert_eq!(
            text,
            "--- /dev/null\n+++ b/f\n@@ -0,0 +1 @@\n+x\n\\ No newline at end of file\n"
        );
        assert!(unified(b"same", b"same", "a", "b").is_empty());
        assert_eq!(
            unified(b"\0", b"x", "a/f", "b/f"),
            b"Binary files a/f and b/f differ\n"
        );
    }
}
