//! `git seal review`: a reviewer's summary of what a range did to sealed
//! files (SPEC §8).

use std::io::Write as _;
use std::sync::Arc;

use super::error::{CommandError, CommandResult};
use git_seal::keys::KeyProvider;
use git_seal::repo::Repo;
use git_seal::review::{self, render, Options, ReviewError, ReviewRange};
use git_seal::workspace::Workspace;

/// Summarise what a range of commits did to sealed files, for a reviewer.
///
/// Compares the range's base tree with its tip tree and prints one line
/// per changed path that is sealed (by the policy or `.gitattributes` of
/// either tree) or an envelope on either side, in one category:
/// content (new ciphertext), rewrap (same ciphertext, recipients changed:
/// kids added and removed), sealed (newly sealed), unsealed (an envelope
/// became plaintext), plaintext (a sealed path stored as plaintext),
/// reverted (the same blob as an older version of the path: a rollback),
/// moved (the same envelope as another path in the base: a copy or a
/// swap), malformed (not a valid envelope) or deleted. Unsealed, plaintext
/// and malformed are findings: the exit status is 1 when there is one.
///
/// No key is needed to classify. Where a key here opens the envelopes,
/// each line also counts plaintext lines added and removed (`+3 -1`);
/// plaintext itself is shown only with --diff. Paths are the repository's,
/// wherever in the work tree this runs. See docs/review.md.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// What to review: `A..B` (B against A), `A...B` (B against the merge
    /// base of A and B) or a revision (against its parent). Default: HEAD
    /// against its merge base with the branch's upstream (`@{upstream}`),
    /// else against its parent, else (a root commit) the empty tree.
    #[arg(value_name = "REV-RANGE")]
    pub range: Option<String>,
    /// Print one JSON object (schema `git-seal.review/v1`, docs/json.md):
    /// range, paths [{path, category, old_blob, new_blob, kids, kids_added,
    /// kids_removed, from_path, reverted_to, lines, finding, message}] and
    /// findings.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print a Markdown table to post as a pull-request comment (no
    /// plaintext, ever).
    #[arg(long)]
    pub markdown: bool,
    /// After each path, show the unified diff of its plaintext (opened
    /// with a key here). This prints secrets: not with --json or
    /// --markdown.
    #[arg(long, conflicts_with_all = ["json", "markdown"])]
    pub diff: bool,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let repo = Repo::from_env()?;
    let range = ReviewRange::resolve(&repo, args.range.as_deref()).map_err(range_error)?;
    // The workspace's opener when the repository is set up here (its
    // provider first), else the keys held here; none is needed.
    let (repo, keys): (Repo, Option<Arc<dyn KeyProvider>>) = match Workspace::load(repo) {
        Ok(workspace) => {
            let keys = workspace.opener();
            (workspace.repo, Some(keys))
        }
        Err(_) => (
            Repo::from_env()?,
            git_seal::keys::for_opening(None)
                .ok()
                .map(|keys| Arc::new(keys) as Arc<dyn KeyProvider>),
        ),
    };
    let options = Options {
        keys: keys.as_deref(),
        diff: args.diff,
    };
    let review = review::review(&repo, range, options).map_err(range_error)?;
    if args.json {
        let mut doc = serde_json::to_value(&review)?;
        doc["schema"] = "git-seal.review/v1".into();
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else if args.markdown {
        out!("{}", render::markdown(&review));
    } else {
        let lines = render::text(&review);
        let (last, per_path) = lines.split_last().expect("a range line and a summary");
        outln!("{}", per_path[0]);
        for (line, entry) in per_path[1..].iter().zip(&review.paths) {
            outln!("{line}");
            if args.diff {
                match (&entry.diff, entry.no_lines) {
                    (Some(diff), _) => super::to_stdout(|out| out.write_all(diff.expose()))?,
                    (None, why) => outln!(
                        "    (no plaintext diff: {})",
                        why.unwrap_or("nothing to compare")
                    ),
                }
            }
        }
        outln!("{last}");
    }
    Ok(u8::from(review.findings > 0))
}

fn range_error(e: ReviewError) -> CommandError {
    if e.is_usage() {
        CommandError::usage(e)
    } else {
        CommandError::from(e)
    }
}
